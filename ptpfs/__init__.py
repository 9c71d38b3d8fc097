"""ptpfs: mount PTP / MTP / PTP-IP cameras as a folder; a layered PTP library
and the ``ptpctl`` command line.

``__version__`` is the one version source: ``pyproject.toml`` reads it
(``[tool.setuptools.dynamic]``) and both programs' ``--version`` print it.
"""

__version__ = "0.2.0"
