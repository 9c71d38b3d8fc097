"""ptpfs mounted for real (FUSE, in a temp dir) over the simulated camera,
driven with ordinary tools: ls, stat, cp, rsync, mv, rm, df, cat, echo."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess

import pytest
from fuse_helpers import run

from ptpfs.sim import SD1, SD2, SampleStore, SimCamera, get_profile, make_camera
from ptpfs.sim.store import SimObject

pytestmark = pytest.mark.fuse



def sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- listing
@pytest.mark.parametrize("profile", ["generic", "canon-eos", "android-mtp"])
def test_ls_stat_and_tree(sim_mount, profile: str) -> None:
    m = sim_mount(profile, folders=2, files_per_folder=6)
    top = sorted(os.listdir(m.mnt))
    assert top == [".ptp", "SD1", "SD2"]
    assert ".ptp" in run(["ls", "-a", m.mnt]).stdout.split()
    out = run(["ls", "-lR", m.mnt])
    assert out.returncode == 0, out.stderr
    assert "IMG_0001.JPG" in out.stdout and "101CANON" in out.stdout
    obj = m.camera.store.find("DCIM/100CANON/IMG_0001.JPG")
    st = os.stat(m.path("SD1/DCIM/100CANON/IMG_0001.JPG"))
    assert st.st_size == obj.size
    assert abs(st.st_mtime - obj.mtime.timestamp()) < 2
    assert st.st_ino == os.stat(m.path("SD1/DCIM/100CANON/IMG_0001.JPG")).st_ino
    assert os.path.isdir(m.path("SD1/DCIM"))
    with pytest.raises(FileNotFoundError):
        os.stat(m.path("SD1/nope"))


def test_absent_slot_hidden_and_card_events(wait_for, sim_mount) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2, second_slot="absent")
    assert sorted(os.listdir(m.mnt)) == [".ptp", "SD1"]
    m.camera.insert_card(SD2)
    assert wait_for(lambda: "SD2" in os.listdir(m.mnt))
    m.camera.remove_card(SD2)
    assert wait_for(lambda: "SD2" not in os.listdir(m.mnt))


def test_listing_is_cheap_on_capable_devices(sim_mount) -> None:
    m = sim_mount("android-mtp", folders=10, files_per_folder=50)
    before = m.camera.stats.transactions
    out = run(["ls", "-lR", m.mnt])
    assert out.returncode == 0
    assert out.stdout.count("IMG_") == 500
    used = m.camera.stats.transactions - before
    # 10 folders + DCIM + 2 storage roots + storage ids/infos + /.ptp
    assert used <= 10 + 1 + 2 + 3 + 5, used


def test_hostile_names(sim_mount) -> None:
    store = SampleStore(folders=1, files_per_folder=2)
    parent = store.find("DCIM/100CANON")
    now = parent.mtime
    from ptpfs.sim.store import BytesContent
    with store.mutating():
        for name, data in (("../x", b"dotdot"), ("a/b", b"slash"), ("IMG_0001.JPG", b"dup"),
                           ("..", b"parent"), ("c\nd", b"newline"), ("é" * 200 + ".JPG", b"long")):
            # A hostile device: the simulator's own API refuses such names (and keys
            # children by name), so the objects are planted in its model directly.
            obj = SimObject(store.new_handle(), SD1, parent.handle, name, 0x3000, now, now,
                            BytesContent(data))
            parent.children[f"hostile-{obj.handle}"] = obj.handle
            store._objects[obj.handle] = obj
    m = sim_mount(camera=SimCamera(store, "generic"))
    names = os.listdir(m.path("SD1/DCIM/100CANON"))
    assert "IMG_0001.JPG" in names and "IMG_0001~2.JPG" in names
    assert ".._x" in names and "a_b" in names and "__" in names and "c_d" in names
    assert all(len(n.encode()) <= 255 for n in names)
    with open(m.path("SD1/DCIM/100CANON/IMG_0001~2.JPG"), "rb") as f:
        assert f.read() == b"dup"
    with open(m.path("SD1/DCIM/100CANON/a_b"), "rb") as f:
        assert f.read() == b"slash"
    assert not os.path.exists(os.path.join(os.path.dirname(m.mnt), "x"))


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize("profile", ["generic", "android-mtp", "canon-eos"])
def test_cp_out_matches(sim_mount, tmp_path, profile: str) -> None:
    m = sim_mount(profile, folders=1, files_per_folder=4, jpeg_size=300_000, raw_size=900_000,
                  big_file=3_000_000)
    dest = tmp_path / "out"
    res = run(["cp", "-r", m.path("SD1/DCIM"), str(dest)])
    assert res.returncode == 0, res.stderr
    for name in os.listdir(dest / "100CANON"):
        obj = m.camera.store.find(f"DCIM/100CANON/{name}")
        assert sha(str(dest / "100CANON" / name)) == obj.sha256(), name


def test_head_reads_little(sim_mount) -> None:
    m = sim_mount("android-mtp", folders=1, files_per_folder=2, big_file=50_000_000)
    before = m.camera.stats.bytes_out
    res = subprocess.run(["head", "-c", "65536", m.path("SD1/DCIM/100CANON/MVI_9999.MP4")],
                         capture_output=True)
    assert len(res.stdout) == 65536
    assert m.camera.stats.bytes_out - before <= 1 << 20


def test_concurrent_readers(sim_mount, tmp_path) -> None:
    m = sim_mount("android-mtp", folders=1, files_per_folder=6, jpeg_size=2_000_000,
                  raw_size=3_000_000)
    files = sorted(os.listdir(m.path("SD1/DCIM/100CANON")))
    paths = [m.path("SD1/DCIM/100CANON", f) for f in files] + \
        [m.path("SD1/DCIM/100CANON", files[0])] * 2
    procs = [subprocess.Popen(["sha256sum", p], stdout=subprocess.PIPE, text=True) for p in paths]
    outs = [p.communicate(timeout=60)[0].split()[0] for p in procs]
    for path, digest in zip(paths, outs):
        obj = m.camera.store.find("DCIM/100CANON/" + os.path.basename(path))
        assert digest == obj.sha256()


def test_no_partial_read_device_spools(sim_mount) -> None:
    base = get_profile("generic")
    profile = dataclasses.replace(base, name="no-partial", operations=tuple(
        op for op in base.operations if op != 0x101B))
    cam = SimCamera(SampleStore(folders=1, files_per_folder=4, jpeg_size=1_500_000,
                                raw_size=2_000_000), profile)
    m = sim_mount(camera=cam)
    assert m.session.capabilities.partial_read is None
    files = sorted(os.listdir(m.path("SD1/DCIM/100CANON")))
    paths = [m.path("SD1/DCIM/100CANON", files[0])] * 3 + [m.path("SD1/DCIM/100CANON", files[1])]
    procs = [subprocess.Popen(["sha256sum", p], stdout=subprocess.PIPE, text=True) for p in paths]
    outs = [p.communicate(timeout=60)[0].split()[0] for p in procs]
    for path, digest in zip(paths, outs):
        assert digest == cam.store.find("DCIM/100CANON/" + os.path.basename(path)).sha256()


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize("profile", ["generic", "android-mtp"])
def test_cp_in_and_back(sim_mount, tmp_path, profile: str) -> None:
    m = sim_mount(profile, folders=1, files_per_folder=2)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    blobs = {"a.jpg": os.urandom(3_000_123), "sub/b.txt": b"hello\n", "sub/empty.bin": b""}
    for rel, data in blobs.items():
        (src / rel).write_bytes(data)
    res = run(["cp", "-r", str(src), m.path("SD1/upload")])
    assert res.returncode == 0, res.stderr
    for rel, data in blobs.items():
        obj = m.camera.store.find("upload/" + rel)
        assert obj.sha256() == hashlib.sha256(data).hexdigest()
        assert sha(m.path("SD1/upload", rel)) == hashlib.sha256(data).hexdigest()
        assert os.path.getsize(m.path("SD1/upload", rel)) == len(data)
    assert m.camera.store.find("upload/a.jpg").format == 0x3801
    # overwrite an existing file: replaced, one object left
    (src / "a.jpg").write_bytes(b"new content")
    assert run(["cp", str(src / "a.jpg"), m.path("SD1/upload/a.jpg")]).returncode == 0
    assert open(m.path("SD1/upload/a.jpg"), "rb").read() == b"new content"
    assert sorted(os.listdir(m.path("SD1/upload"))) == ["a.jpg", "sub"]
    assert m.camera.store.find("upload/a.jpg").read(0, 100) == b"new content"


def test_rsync_both_ways(sim_mount, tmp_path) -> None:
    m = sim_mount("android-mtp", folders=1, files_per_folder=4, jpeg_size=200_000,
                  raw_size=400_000)
    out = tmp_path / "out"
    res = run(["rsync", "-a", m.path("SD1/DCIM") + "/", str(out)])
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out / "100CANON")) == sorted(os.listdir(m.path("SD1/DCIM/100CANON")))
    res = run(["rsync", "-a", str(out) + "/", m.path("SD2/copy")])
    assert res.returncode == 0, res.stderr
    for name in os.listdir(out / "100CANON"):
        assert sha(m.path("SD2/copy/100CANON", name)) == sha(str(out / "100CANON" / name))
    assert not [n for n in os.listdir(m.path("SD2/copy/100CANON")) if n.startswith(".")]


def test_mkdir_rmdir_rm_mv_df(sim_mount) -> None:
    m = sim_mount("android-mtp", folders=1, files_per_folder=2)
    d = m.path("SD2/newdir")
    os.mkdir(d)
    assert os.path.isdir(d) and m.camera.store.find("newdir", SD2).is_folder
    with open(os.path.join(d, "f.txt"), "w") as f:
        f.write("x" * 1000)
    res = run(["rmdir", d])
    assert res.returncode != 0 and "not empty" in res.stderr.lower()
    assert run(["mv", os.path.join(d, "f.txt"), os.path.join(d, "g.txt")]).returncode == 0
    assert os.listdir(d) == ["g.txt"]
    assert m.camera.store.find("newdir/g.txt", SD2).size == 1000
    os.mkdir(m.path("SD2/other"))
    assert run(["mv", os.path.join(d, "g.txt"), m.path("SD2/other/h.txt")]).returncode == 0
    assert os.listdir(m.path("SD2/other")) == ["h.txt"]
    # across storages: mv falls back to copy + delete (EXDEV)
    assert run(["mv", m.path("SD2/other/h.txt"), m.path("SD1/h.txt")]).returncode == 0
    assert os.path.getsize(m.path("SD1/h.txt")) == 1000
    assert os.listdir(m.path("SD2/other")) == []
    assert run(["rm", m.path("SD1/h.txt")]).returncode == 0
    assert not os.path.exists(m.path("SD1/h.txt"))
    assert run(["rmdir", d]).returncode == 0
    assert not os.path.exists(d)
    df = run(["df", "-B1", m.mnt, m.path("SD2")])
    assert df.returncode == 0, df.stderr
    sd2 = os.statvfs(m.path("SD2"))
    storage = m.camera.store.storage(SD2)
    assert sd2.f_blocks * sd2.f_frsize == storage.capacity // 4096 * 4096
    free_before = sd2.f_bfree
    with open(m.path("SD2/big.bin"), "wb") as f:
        f.write(b"\0" * (4 << 20))
    assert os.statvfs(m.path("SD2")).f_bfree <= free_before - 1024


def test_rename_unsupported_gives_exdev_fallback(sim_mount) -> None:
    # a device without rename: small files are renamed by copying (issue 9),
    # folders get EXDEV and mv falls back to copying itself
    m = sim_mount("generic", folders=1, files_per_folder=2)
    with open(m.path("SD1/one.txt"), "w") as f:
        f.write("one")
    os.rename(m.path("SD1/one.txt"), m.path("SD1/two.txt"))
    assert open(m.path("SD1/two.txt")).read() == "one"
    assert not os.path.exists(m.path("SD1/one.txt"))
    os.mkdir(m.path("SD1/d1"))
    with pytest.raises(OSError) as exc:
        os.rename(m.path("SD1/d1"), m.path("SD1/d2"))
    assert exc.value.errno == 18  # EXDEV: mv copies instead
    assert run(["mv", m.path("SD1/d1"), m.path("SD1/d2")]).returncode == 0
    assert os.path.isdir(m.path("SD1/d2")) and not os.path.exists(m.path("SD1/d1"))


def test_full_storage_fails_at_cp(wait_for, sim_mount, tmp_path) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2)
    m.camera.set_full(SD2)
    src = tmp_path / "photo.jpg"
    src.write_bytes(os.urandom(500_000))
    res = run(["cp", str(src), m.path("SD2/photo.jpg")])
    assert res.returncode != 0
    assert "space" in res.stderr.lower()
    assert m.camera.store.children(SD2, 0) == []
    assert wait_for(lambda: "photo.jpg" not in os.listdir(m.path("SD2")))


def test_read_only_storage(wait_for, sim_mount) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2)
    os.listdir(m.path("SD1/DCIM/100CANON"))
    m.camera.set_read_only(SD1)   # StorageInfoChanged: permissions follow without remount
    assert wait_for(lambda: os.stat(m.path("SD1/DCIM/100CANON/IMG_0001.JPG")).st_mode & 0o222 == 0)
    res = run(["touch", m.path("SD1/new.txt")])
    assert res.returncode != 0 and "read-only" in res.stderr.lower()
    res = run(["rm", "-f", m.path("SD1/DCIM/100CANON/IMG_0001.JPG")])
    assert res.returncode != 0
    assert m.camera.store.find("DCIM/100CANON/IMG_0001.JPG")
    assert os.stat(m.path("SD1/DCIM/100CANON/IMG_0001.JPG")).st_mode & 0o222 == 0


def test_ro_mount_option(sim_mount) -> None:
    m = sim_mount("generic", options=["ro"], folders=1, files_per_folder=2)
    res = run(["mkdir", m.path("SD1/x")])
    assert res.returncode != 0 and "read-only" in res.stderr.lower()


# ---------------------------------------------------------------- live events
def test_new_photo_appears_without_remount(wait_for, sim_mount) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2)
    folder = m.path("SD1/DCIM/100CANON")
    before = set(os.listdir(folder))
    handle = m.camera.take_photo(SD1, "DCIM/100CANON", size=100_000)
    name = m.camera.store.get(handle).name
    assert wait_for(lambda: name in os.listdir(folder))
    assert set(os.listdir(folder)) - before == {name}
    assert os.path.getsize(os.path.join(folder, name)) == 100_000
    m.camera.remove_object(handle)
    assert wait_for(lambda: name not in os.listdir(folder))


def test_new_photo_eos_events(wait_for, sim_mount) -> None:
    m = sim_mount("canon-eos", folders=1, files_per_folder=2)
    folder = m.path("SD1/DCIM/100CANON")
    os.listdir(folder)
    handle = m.camera.take_photo(SD1, "DCIM/100CANON", size=10_000)
    name = m.camera.store.get(handle).name
    assert wait_for(lambda: name in os.listdir(folder))


# ---------------------------------------------------------------- /.ptp
def test_virtual_files(sim_mount) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2)
    for name in ("device", "operations", "events", "formats", "properties", "storages"):
        path = m.path(".ptp", name)
        data = open(path, "rb").read()
        assert data, name
        assert os.stat(path).st_size == len(data)
        wc = run(["wc", "-c", path]).stdout.split()[0]
        assert int(wc) == len(data), name
    assert "Model: Simulated PTP camera" in open(m.path(".ptp/device")).read()
    assert "0x1001/PTP_GetDeviceInfo" in open(m.path(".ptp/operations")).read()
    assert "0x3801/EXIF_JPEG" in open(m.path(".ptp/formats")).read()
    props = open(m.path(".ptp/properties")).read()
    assert "0x5001/BatteryLevel" in props and "ExposureTime" in props
    assert "SD1" in open(m.path(".ptp/storages")).read()
    assert "ExposureTime" in os.listdir(m.path(".ptp/properties.d"))


def test_property_files(wait_for, sim_mount) -> None:
    m = sim_mount("generic", folders=1, files_per_folder=2)
    exp = m.path(".ptp/properties.d/ExposureTime")
    res = run(["bash", "-c", f"echo 1/250 > {exp}"])
    assert res.returncode == 0, res.stderr
    assert open(exp).read() == "1/250\n"
    assert m.session.get_device_prop_value(0x500D) == 40
    res = run(["bash", "-c", f"echo 1/3 > {exp}"])
    assert res.returncode != 0 and "invalid" in res.stderr.lower()
    fnum = m.path(".ptp/properties.d/FNumber")
    assert run(["bash", "-c", f"echo f/5.6 > {fnum}"]).returncode == 0
    assert open(fnum).read() == "f/5.6\n"
    assert run(["bash", "-c", f"echo 400 > {fnum}"]).returncode == 0   # the raw value, f/4
    assert open(fnum).read() == "f/4\n"
    battery = m.path(".ptp/properties.d/BatteryLevel")
    assert run(["bash", "-c", f"echo 5 > {battery}"]).returncode != 0  # read-only property
    m.camera.set_property(0x5001, 42)
    assert wait_for(lambda: open(battery).read() == "42\n")
    assert os.stat(battery).st_size == 3


# ---------------------------------------------------------------- hostile device
@pytest.mark.parametrize("seed,echo,same", [(1, True, False), (2, False, False), (3, True, True)])
def test_hostile_fabric_listing_never_hangs(sim_mount, seed: int, echo: bool, same: bool) -> None:
    """Invented graphs (cyclic parents, self-parents, hostile and duplicate names) list
    safely: every name is a valid component and unique, and ls -R terminates."""
    from ptpfs.testing.hostile import Fabric, HostileCamera, Plan

    inner = make_camera(None, "generic", folders=1, files_per_folder=2)
    plan = Plan(seed, "generic", (), Fabric(seed=seed, count=30, fanout=10, echo_parent=echo,
                                          same_name=same))
    m = sim_mount(camera=HostileCamera(inner, plan))
    res = run(["ls", "-laR", m.path("SD1")], timeout=60)
    assert res.returncode in (0, 1, 2)  # ls may report objects that vanish; it must finish
    assert len(os.listdir(m.path("SD1"))) > 0
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(m.path("SD1"), onerror=errors.append):
        assert dirpath.count("/") < 200
        names = dirnames + filenames
        assert len(names) == len(set(names))
        assert all(n and n not in (".", "..") and "/" not in n and len(n.encode()) <= 255
                   for n in names)
