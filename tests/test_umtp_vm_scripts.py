"""The uMTP-Responder gadget mode of tools/usb-vm/usb-vm (tools/usb-vm/vmlib/gadget.py), without booting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "usb-vm"))

from vmlib import gadget, guest


def test_config_serves_the_folder_read_write_over_functionfs() -> None:
    conf = gadget.umtprd_conf(Path("/data/my \"odd\" dir"), "My store")
    lines = conf.splitlines()
    assert "storage \"/data/my 'odd' dir\" \"My store\" \"rw\"" in lines
    assert "usb_functionfs_mode 0x1" in lines
    assert [line.split()[0] for line in lines if line.startswith("usb_e")] == [
        "usb_epin_path", "usb_epout_path", "usb_epint_path"]
    assert 'usb_dev_path "/dev/ffs-mtp/ep0"' in lines


def test_setup_binds_the_udc_only_after_umtprd_wrote_its_descriptors() -> None:
    script = gadget.setup_script(Path("/srv/x"), "S")
    start = script.index("umtprd -conf /etc/umtprd/umtprd.conf")
    wait = script.index("until [ -e /dev/ffs-mtp/ep1 ]")
    bind = script.index("> /sys/kernel/config/usb_gadget/umtp/UDC")
    assert script.index("mount -t functionfs mtp /dev/ffs-mtp") < start < wait < bind
    assert "ln -s /sys/kernel/config/usb_gadget/umtp/functions/ffs.mtp" in script
    # the heredoc really writes the configuration: run that part in a shell
    start = script.index("cat > /etc/umtprd/umtprd.conf")
    body = script[start:script.index("USBVM_EOF\n", script.index("<<'USBVM_EOF'") + 12) + 10]
    out = subprocess.run(["sh", "-c", body.replace("/etc/umtprd/umtprd.conf", "/dev/stdout")],
                         capture_output=True, text=True, check=True).stdout
    assert out == gadget.umtprd_conf(Path("/srv/x"), "S")


def test_modules_already_loaded_at_boot_are_skipped() -> None:
    lines = gadget.insmod_lines([Path("/c/usbcore.ko"), Path("/c/dummy_hcd.ko")], "/newroot")
    assert lines[0].startswith("[ -d /sys/module/usbcore ] || insmod /newroot/c/usbcore.ko")
    assert "insmod /newroot/c/dummy_hcd.ko" in lines[1]


def test_stage2_runs_the_gadget_setup_before_waiting_for_usb() -> None:
    script = guest.stage2_script("6.1.0-x", [Path("/srv/x")], False, True, setup=["echo SETUP"])
    assert script.index("mount -t 9p") < script.index("echo SETUP") < script.index("until ls /sys/bus/usb")
