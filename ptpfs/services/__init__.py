"""Device services: what the filesystem and the command line both need from a session.

This layer sits between :mod:`ptpfs.session` and its users (:mod:`ptpfs.fs`,
:mod:`ptpfs.cli`): one implementation of each device-level service, so the
mount and ``ptpctl`` cannot disagree.  ``properties`` parses, formats and
validates device property values; ``objects`` walks a storage's objects;
``importer`` copies new shots off a camera (``ptpctl import``).
"""
