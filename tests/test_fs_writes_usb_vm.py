"""Writes over real USB: ptpfs mounted inside the QEMU guest (tools/usb-vm/usb-vm) on QEMU's
own usb-mtp device and on uMTP-Responder (two independent responders), driven with fsx,
sed -i, os.replace, rsync twice, cp -r and 8 parallel writers; the bytes checked on the
host, in the folder the device serves."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                       reason="qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
]

ROOT = Path(__file__).resolve().parent.parent
USB_VM = ROOT / "tools" / "usb-vm" / "usb-vm"

GUEST = r"""
set -u
cd {root}
mkdir -p /tmp/mnt /tmp/spool /tmp/state /tmp/src/sub
export XDG_STATE_HOME=/tmp/state
{py} -m ptpfs.cli.ptpfs_main -o spool_dir=/tmp/spool usb /tmp/mnt || exit 3
for i in $(seq 1 100); do grep -q ' /tmp/mnt ' /proc/mounts && break; sleep 0.2; done
ST=/tmp/mnt/$(ls /tmp/mnt | grep -v '^\.ptp$' | head -1)
out={share}
{py} scripts/fsx.py --file "$ST/fsx.bin" --device-file {dev}/fsx.bin --ops 200 --seed 5 \
    > $out/fsx.txt 2>&1; echo "fsx $?" >> $out/rc.txt
printf 'hello world\n' > "$ST/a.txt"
sed -i s/world/there/ "$ST/a.txt" 2> $out/sed.err; echo "sed $?" >> $out/rc.txt
printf 'replaced\n' > "$ST/b.txt"
{py} -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$ST/b.txt" "$ST/c.txt" 2> $out/replace.err
echo "replace $?" >> $out/rc.txt
for i in 1 2 3; do head -c 5000 /dev/urandom > /tmp/src/f$i; done; echo deep > /tmp/src/sub/d
rsync -a --inplace --stats /tmp/src/ "$ST/r/" > $out/rsync1.txt 2>&1; echo "rsync1 $?" >> $out/rc.txt
rsync -a --inplace --stats /tmp/src/ "$ST/r/" > $out/rsync2.txt 2>&1; echo "rsync2 $?" >> $out/rc.txt
cp -r /tmp/src "$ST/copy" 2> $out/cp.err; echo "cp $?" >> $out/rc.txt
for i in 1 2 3 4 5 6 7 8; do
  (for j in 1 2 3 4 5 6 7 8; do
     printf "p$i-$j%04000d" 0 > "$ST/p$i-$j.bin" || echo "fail p$i-$j" >> $out/fail.txt
   done) &
done
wait
fusermount3 -u /tmp/mnt
"""


def _why(share: Path, rc: dict[str, str]) -> str:
    """The failed steps' own messages (stderr, or the step's log for fsx and rsync)."""
    logs = {"fsx": "fsx.txt", "rsync1": "rsync1.txt", "rsync2": "rsync2.txt"}
    parts = [f"rc={rc}"]
    for step, code in rc.items():
        path = share / logs.get(step, f"{step}.err")
        if code != "0" and path.exists():
            parts.append(f"--- {step}: " + path.read_text(errors="replace")[-2000:])
    return "\n".join(parts)


@pytest.mark.parametrize("device", ["--mtp-dir", "--umtp"], ids=["qemu-usb-mtp", "umtprd"])
def test_writes_over_usb_in_guest(tmp_path: Path, device: str) -> None:
    if device == "--umtp" and shutil.which("umtprd") is None:
        pytest.skip("umtprd not installed (apt-get install umtp-responder)")
    dev, share = tmp_path / "dev", tmp_path / "share"
    dev.mkdir()
    share.mkdir()
    script = GUEST.format(root=shlex.quote(str(ROOT)), py=shlex.quote(sys.executable),
                          share=shlex.quote(str(share)), dev=shlex.quote(str(dev)))
    (share / "run.sh").write_text(script)
    proc = subprocess.run([str(USB_VM), device, str(dev), "--share", str(share),
                           "--share", str(dev), "--timeout", "300", "--", "bash",
                           str(share / "run.sh")], capture_output=True, timeout=360, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    rc = dict(line.split() for line in (share / "rc.txt").read_text().splitlines())
    assert rc == {"fsx": "0", "sed": "0", "replace": "0", "rsync1": "0", "rsync2": "0",
                  "cp": "0"}, _why(share, rc)
    assert "0 mismatches" in (share / "fsx.txt").read_text()
    assert (dev / "a.txt").read_bytes() == b"hello there\n"
    assert (dev / "c.txt").read_bytes() == b"replaced\n" and not (dev / "b.txt").exists()
    assert "Number of regular files transferred: 0" in (share / "rsync2.txt").read_text()
    assert (dev / "r" / "sub" / "d").read_bytes() == b"deep\n"
    assert hashlib.sha256((dev / "copy" / "f2").read_bytes()).digest() == \
        hashlib.sha256((dev / "r" / "f2").read_bytes()).digest()
    assert not (share / "fail.txt").exists()
    parallel = sorted(p for p in os.listdir(dev) if p.startswith("p"))
    assert len(parallel) == 64
    for name in parallel:
        assert (dev / name).read_bytes() == (name[:-4] + "0" * 4000).encode()
