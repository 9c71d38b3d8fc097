"""Test machinery that ships with the source tree but is not installed.

``pip install .`` / ``pipx install .`` leave this package out (pyproject.toml
excludes ``ptpfs.testing*``); the test suite and the scripts in ``scripts/``
run from the repository and import it from there.

* :mod:`~ptpfs.testing.hostile` - a hostile PTP device for fuzzing the client;
* :mod:`~ptpfs.testing.usb_sim` - the ``PTPFS_TEST_USB_SIM`` hook: ``usb``
  specs served by the simulated camera through the simulated pyusb backend.
"""
