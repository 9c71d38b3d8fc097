"""``ptpctl import``: the importer against the simulated camera on every profile.

A large card (2,000 small files), an interruption mid-file (the resume copies only
the rest, continuing the part file), new shots between two imports, the link cut
mid-import, name+size(+hash) skipping, templates, filters, --verify and --move,
and the command line itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.cli import ptpctl
from ptpfs.errors import ConnectionLost, InvalidValue
from ptpfs.services.importer import (
    PART_SUFFIX,
    Importer,
    ImportOptions,
    parse_extensions,
    parse_since,
    render_template,
    safe_component,
)
from ptpfs.session import Session
from ptpfs.sim import PROFILES, SimCamera, make_camera
from ptpfs.transport.inprocess import InProcessTransport

SMALL = {"jpeg_size": 3000, "raw_size": 5000}


def _open(camera: SimCamera) -> Session:
    return Session(InProcessTransport(camera)).open()


@pytest.fixture
def camera_factory() -> Iterator[Any]:
    made: list[SimCamera] = []

    def make(profile: str = "generic", **options: Any) -> SimCamera:
        cam = make_camera(None, profile, **{**SMALL, **options})
        made.append(cam)
        return cam
    yield make
    for cam in made:
        cam.close()


def _files(dest: Path) -> dict[str, Path]:
    return {p.name: p for p in dest.rglob("*") if p.is_file()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _camera_files(camera: SimCamera) -> list[Any]:
    return [o for s in camera.store.storages() for o in camera.store.all_objects(s.storage_id)
            if not o.is_folder]


def _run(camera: SimCamera, dest: Path, state: Path, **opts: Any) -> Any:
    session = _open(camera)
    try:
        return Importer(session, str(dest), ImportOptions(journal_dir=str(state), **opts)).run()
    finally:
        session.close()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_large_card_every_profile(camera_factory: Any, tmp_path: Path, profile: str) -> None:
    camera = camera_factory(profile, folders=20, files_per_folder=100)
    dest, state = tmp_path / "dest", tmp_path / "state"
    report = _run(camera, dest, state)
    objs = _camera_files(camera)
    assert len(objs) == 2000 and len(report.copied) == 2000 and not report.failed
    got = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    assert len(got) == 2000
    by_name = {}
    for o in objs:
        when = o.ctime
        rel = f"{when:%Y}/{when:%Y-%m-%d}/{o.name}"
        by_name[rel] = o
    # Two folders may reuse IMG_nnnn names: the second gets "-1" instead of overwriting.
    for rel, path in got.items():
        stem, ext = os.path.splitext(rel)
        obj = by_name.get(rel) or by_name[stem.rsplit("-", 1)[0] + ext]
        assert path.stat().st_size == obj.size
    # Every byte is right: the hashes of all copies equal the camera's.
    assert sorted(_sha(p) for p in got.values()) == sorted(o.sha256() for o in objs)
    sample = next(iter(got.values()))
    assert not any(p.name.endswith(PART_SUFFIX) for p in dest.rglob("*"))
    # mtime = capture time (naive camera time read as local time)
    obj = next(o for o in objs if got.get(f"{o.ctime:%Y}/{o.ctime:%Y-%m-%d}/{o.name}") == sample)
    assert sample.stat().st_mtime == obj.ctime.timestamp()
    again = _run(camera, dest, state)
    assert again.planned == 0 and again.skipped_imported == 2000 and not again.copied


def test_interrupted_mid_file_resumes_only_the_rest(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("canon-eos", files_per_folder=8, jpeg_size=300_000,
                            raw_size=3_000_000)
    dest, state = tmp_path / "dest", tmp_path / "state"
    session = _open(camera)

    def stop_midway(files: int, nfiles: int, done: int, total: int, name: str) -> None:
        if files == 3 and done > sum(o.size for o in _camera_files(camera)[:3]) + 1_100_000:
            raise KeyboardInterrupt

    importer = Importer(session, str(dest), ImportOptions(journal_dir=str(state)),
                        progress=stop_midway)
    with pytest.raises(KeyboardInterrupt):
        importer.run()
    session.close()
    assert len(importer.report.copied) == 3
    assert len(_files(dest)) == 4                         # 3 files and 1 part file
    parts = [p for p in dest.rglob("*") if p.name.endswith(PART_SUFFIX)]
    kept = parts[0].stat().st_size
    assert len(parts) == 1 and 1_100_000 < kept < _camera_files(camera)[3].size
    journal = (state / "083021000123.log").read_text().splitlines()
    assert len(journal) == 3                              # the part file never counts
    objs = _camera_files(camera)
    report = _run(camera, dest, state)
    assert len(report.copied) == 5 and report.skipped_imported == 3
    assert report.resumed_bytes == kept and not parts[0].exists()
    assert report.bytes_copied == sum(o.size for o in objs[3:]) - report.resumed_bytes
    files = _files(dest)
    assert len(files) == 8
    assert {n: _sha(p) for n, p in files.items()} == {o.name: o.sha256() for o in objs}


def test_new_shots_between_imports(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("android-mtp")
    dest, state = tmp_path / "dest", tmp_path / "state"
    assert len(_run(camera, dest, state).copied) == 10
    h1 = camera.store.take_photo(size=4000)
    h2 = camera.store.take_photo(size=6000)
    report = _run(camera, dest, state)
    assert sorted(e["handle"] for e in report.copied) == sorted([h1, h2])
    assert report.skipped_imported == 10
    for h in (h1, h2):
        obj = camera.store.get(h)
        assert _sha(_files(dest)[obj.name]) == obj.sha256()


def test_link_cut_mid_import_then_resume(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("generic", files_per_folder=10, jpeg_size=200_000, raw_size=400_000)
    dest, state = tmp_path / "dest", tmp_path / "state"
    session = _open(camera)
    importer = Importer(session, str(dest), ImportOptions(journal_dir=str(state)))
    camera.faults.drop_after(1_000_000)
    with pytest.raises(ConnectionLost):
        importer.run()
    session.close()
    done = len(importer.report.copied)
    assert 0 < done < 10 and "ConnectionLost" in importer.report.interrupted
    report = _run(camera, dest, state)
    assert len(report.copied) == 10 - done and report.skipped_imported == done
    objs = _camera_files(camera)
    assert {n: _sha(p) for n, p in _files(dest).items()} == {o.name: o.sha256() for o in objs}


def test_existing_in_dest_by_name_size_and_hash(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("generic", files_per_folder=4)
    dest, state = tmp_path / "dest", tmp_path / "state"
    objs = _camera_files(camera)
    day = dest / "2023" / "2023-01-16"
    day.mkdir(parents=True)
    (day / objs[0].name).write_bytes(camera.store.get(objs[0].handle).read(0, objs[0].size))
    (day / objs[1].name).write_bytes(b"x" * objs[1].size)     # same size, other bytes
    (day / objs[2].name).write_bytes(b"different size")
    report = _run(camera, dest, state)
    assert report.skipped_existing == 2 and len(report.copied) == 2
    assert (day / (os.path.splitext(objs[2].name)[0] + "-1" + os.path.splitext(objs[2].name)[1])
            ).stat().st_size == objs[2].size
    report = _run(camera, dest, tmp_path / "state2", hash_existing=True)
    # with --hash, objs[1]'s look-alike is no match: it is copied beside it as -1
    assert [Path(e["dest"]).name for e in report.copied] == [
        os.path.splitext(objs[1].name)[0] + "-1" + os.path.splitext(objs[1].name)[1]]
    assert report.skipped_existing == 3


def test_dry_run_filters_and_template(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("canon-eos")
    dest, state = tmp_path / "dest", tmp_path / "state"
    report = _run(camera, dest, state, dry_run=True, extensions=frozenset({"cr3"}))
    assert report.planned == 5 and all(e["dest"].endswith(".CR3") for e in report.copied)
    assert not dest.exists() and not state.exists()
    since = datetime(2023, 1, 16, 10, 0, 30)
    report = _run(camera, dest, state, dry_run=True, since=since)
    assert report.planned == sum(o.ctime >= since for o in _camera_files(camera))
    report = _run(camera, dest, state, template="{model}/{folder}/{hour}{minute}-{stem}.{ext}")
    assert sorted(Path(e["dest"]).relative_to(dest).as_posix() for e in report.copied)[0] == \
        "Canon EOS R6/100CANON/1000-IMG_0001.CR3"


def test_verify_catches_a_bad_second_read(camera_factory: Any, tmp_path: Path) -> None:
    camera = camera_factory("generic", files_per_folder=2)
    dest, state = tmp_path / "dest", tmp_path / "state"
    session = _open(camera)
    reads: list[int] = []
    real = session.get_object

    def flaky_get(handle: int, sink: Any = None, progress: Any = None) -> Any:
        reads.append(handle)
        if reads.count(handle) == 2 and len(set(reads)) == 1:  # 2nd read of the 1st file
            class Flip:
                def write(self, data: Any) -> int:
                    return sink.write(bytes([data[0] ^ 1]) + bytes(data[1:]))
            return real(handle, sink=Flip(), progress=progress)
        return real(handle, sink=sink, progress=progress)

    session.get_object = flaky_get  # type: ignore[method-assign]
    report = Importer(session, str(dest), ImportOptions(journal_dir=str(state), move=True)).run()
    session.close()
    assert len(report.failed) == 1 and "verification failed" in report.failed[0]["error"]
    assert len(report.copied) == 1 and report.deleted == 1
    # the bad copy left nothing behind and stays on the camera; the good one was moved
    assert len(_files(dest)) == 1 and len(_camera_files(camera)) == 1
    assert report.bytes_read == 2 * sum(e["size"] for e in report.copied) + \
        2 * report.failed[0]["size"]


def test_template_errors() -> None:
    fields = {"year": "2024", "name": "a.jpg"}
    with pytest.raises(InvalidValue, match="unknown field"):
        render_template("{nope}/{name}", fields)
    with pytest.raises(InvalidValue, match="relative"):
        render_template("/abs/{name}", fields)
    with pytest.raises(InvalidValue, match="inside DEST"):
        render_template("{year}/../{name}", fields)
    with pytest.raises(InvalidValue):
        parse_since("yesterday")
    with pytest.raises(InvalidValue):
        parse_extensions(" , ")
    assert parse_extensions("JPG,.cr3") == {"jpg", "cr3"}


@given(st.text(max_size=80))
def test_any_camera_name_stays_inside_dest(name: str) -> None:
    parts = render_template("{year}/{name}", {"year": "2024",
                                              "name": safe_component(name, "fallback")})
    assert parts[0] == "2024" and len(parts) == 2
    assert parts[1] not in (".", "..", "") and "/" not in parts[1] and "\0" not in parts[1]


def test_cli_json_dry_run_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    dest = tmp_path / "dest"
    assert ptpctl.main(["import", str(dest), "--device", "sim", "--dry-run", "--ext", "jpg"]) == 0
    out = capsys.readouterr().out
    assert out.count("would copy /DCIM/100CANON/") == 5 and not dest.exists()
    assert ptpctl.main(["import", str(dest), "--device", "sim", "--json", "--verify"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["copied_count"] == 10 and doc["bytes_read"] == 2 * doc["bytes_copied"]
    assert (tmp_path / "state" / "ptpfs" / "imports" / "SIM000000001.log").exists()
    assert ptpctl.main(["import", str(dest), "--device", "sim", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["copied_count"] == 0 and doc["skipped_imported"] == 10
    assert ptpctl.main(["import", str(dest), "--device", "sim", "--template", "{bad}"]) == 2
    assert "unknown field {bad}" in capsys.readouterr().err
    assert ptpctl.main(["import", str(dest), "--device", "sim", "--since", "soon"]) == 2
    assert ptpctl.main(["import", str(dest), "--device", "ptpip:127.0.0.1:1"]) == 3


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """On a TTY, ptpctl import draws files, bytes, speed and ETA; not when piped."""
    import pty
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root, XDG_STATE_HOME=str(tmp_path / "state"),
               COLUMNS="120")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ptpfs.cli.ptpctl", "import",
                                 str(tmp_path / "dest"), "--device", "sim"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                env=env, cwd=root)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(master)
    drawn = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert "\r" in drawn and "/10 IMG_" in drawn and "MiB/s" in drawn and "%" in drawn
    assert "10/10" in drawn                             # the final state
    assert b"\r" not in out and out.count(b"copied /DCIM/") == 10
