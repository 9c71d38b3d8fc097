"""Shared pytest configuration: hypothesis profiles.

``ci`` (default) keeps property tests quick; ``PTPFS_HYPOTHESIS=long`` runs 5000 examples each.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile("long" if os.environ.get("PTPFS_HYPOTHESIS") == "long" else "ci")
