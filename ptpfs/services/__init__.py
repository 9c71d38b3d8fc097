"""Device services: what the filesystem and the command line both need from a session.

This layer sits between :mod:`ptpfs.session` and its users (:mod:`ptpfs.fs`,
:mod:`ptpfs.cli`): one implementation of each device-level service, so the
mount and ``ptpctl`` cannot disagree: ``listing`` (listing strategies and the
ObjectSize fallback), ``naming`` (untrusted device names made safe),
``uploads`` (which object an upload created), ``properties`` (parsing,
formatting and validating device property values), ``objects`` (a storage's
objects walked once), ``importer`` (new shots copied off a camera, ``ptpctl
import``) and ``firmware`` (Canon EOS firmware update, ``ptpctl firmware``).
"""
