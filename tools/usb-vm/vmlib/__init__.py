"""Helpers behind ``tools/usb-vm/usb-vm``: a small TCG guest with a real USB stack and QEMU's usb-mtp.

Independent of ptpfs: nothing here imports the project, so the harness can test any client.
Modules: ``cpio`` (initramfs archive writer), ``kmod`` (module dependency order from .ko files),
``cache`` (Debian kernel/busybox download and the cached boot artefacts), ``guest`` (the scripts
run inside the guest), ``runner`` (the QEMU command line and the run itself), ``qmp`` (plug and
unplug the MTP device), ``cli`` (the command line).
"""
