"""Device property values (ptpfs.services.properties): one parser, formatter and
validator for ptpctl, /.ptp and the library.

The sweep feeds hundreds of bad values to every settable property of the simulated
camera, through the library and through ``ptpctl --set-property``, and counts the
SetDevicePropValue transactions that reach the camera: there must be none.  The same
sweep through a real mount is in test_properties_mount.py.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptpfs.cli import ptpctl
from ptpfs.errors import InvalidValue
from ptpfs.protocol.codes import DPC, DT, OC, property_name
from ptpfs.protocol.datasets import DevicePropDesc, PropEnum, PropRange
from ptpfs.services.properties import (
    HUMAN_FORMS,
    check_value,
    describe_form,
    format_bias,
    format_both,
    format_exposure,
    format_fnumber,
    format_value,
    parse_bias,
    parse_exposure,
    parse_fnumber,
    parse_iso,
    parse_value,
    resolve_property,
    set_property,
    validate,
)
from ptpfs.session import Session
from ptpfs.sim import make_camera
from ptpfs.transport.inprocess import InProcessTransport

PROJECT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the forms
def test_exposure_forms() -> None:
    assert parse_exposure("1/250") == 40
    assert parse_exposure("0.5") == 5000
    assert parse_exposure('2"') == 20000
    assert parse_exposure("2s") == 20000
    assert parse_exposure("80") is None          # a bare integer is the raw value
    assert format_exposure(40) == "1/250"
    assert format_exposure(20000) == '2"'
    assert format_exposure(5000) == "1/2"
    assert format_exposure(166) == "1/60"
    assert format_exposure(1) == "1/8000"        # cameras store 1/8000 s as 1
    assert format_exposure(3) == "1/3200" and format_exposure(12345) == "1.2345"
    for bad in ("fast/2", "1/0", "-1/250", '"', "1e309s", "inf s", "0.0"):
        with pytest.raises(InvalidValue):
            parse_exposure(bad)


def test_fnumber_forms() -> None:
    assert parse_fnumber("5.6") == 560
    assert parse_fnumber("f/5.6") == 560
    assert parse_fnumber("F8") == 800
    assert parse_fnumber("560") is None
    assert format_fnumber(560) == "f/5.6"
    assert format_fnumber(800) == "f/8"
    for bad in ("f/wide", "f/0", "f/inf", "f/nan", "f/1e309", "F"):
        with pytest.raises(InvalidValue):
            parse_fnumber(bad)


def test_iso_and_bias_forms() -> None:
    assert parse_iso("ISO 400") == parse_iso("iso400") == 400
    assert parse_iso("400") is None
    assert parse_bias("+1/3 EV") == 333 and parse_bias("-1 2/3 EV") == -1667
    assert parse_bias("-0.7") == -700 and parse_bias("2 EV") == 2000
    assert parse_bias("-2") is None
    assert format_bias(-1667) == "-1 2/3 EV" and format_bias(333) == "+1/3 EV"
    assert format_bias(0) == "0 EV" and format_bias(1500) == "+1 1/2 EV"
    for bad in ("ISO", "ISO -1", "ISO inf"):
        with pytest.raises(InvalidValue):
            parse_iso(bad)
    for bad in ("+1/0 EV", "1e309 EV", "nan EV", "EV"):
        with pytest.raises(InvalidValue):
            parse_bias(bad)


EXPOSURE = DevicePropDesc(DPC.ExposureTime, DT.UINT32, 1, 80, 80,
                          PropEnum((1, 2, 5, 40, 80, 166, 5000, 20000)))
FNUMBER = DevicePropDesc(DPC.FNumber, DT.UINT16, 1, 400, 400, PropEnum((280, 400, 560, 800)))
DATETIME = DevicePropDesc(DPC.DateTime, DT.STR, 1, "", "20240101T000000", None)


def test_human_and_raw_forms_mean_the_same_value() -> None:
    assert check_value(EXPOSURE, "1/250") == check_value(EXPOSURE, "40") == 40
    assert check_value(EXPOSURE, "1/60") == 166        # snapped to the camera's 0.0166 s
    assert check_value(EXPOSURE, "0x50") == 80
    assert check_value(FNUMBER, "f/5.6") == check_value(FNUMBER, "5.6") == check_value(FNUMBER, "560")
    assert check_value(DATETIME, "2024-05-01 12:30:00") == "20240501T123000"
    assert check_value(DATETIME, "20240501T123000\n") == "20240501T123000"
    assert check_value(DATETIME, "2024-05-01T12:30:00+02:00") == "20240501T123000+0200"
    assert format_both(DPC.ExposureTime, 80) == "1/125 (80)"
    assert format_both(DPC.WhiteBalance, 2) == "2"
    assert format_value(DPC.DateTime, "20240501T123000") == "2024-05-01 12:30:00"


def test_a_raw_value_is_exact_and_a_human_value_snaps() -> None:
    with pytest.raises(InvalidValue, match="is not one of the allowed values"):
        check_value(EXPOSURE, "167")                   # raw: exactly as listed, or refused
    assert check_value(EXPOSURE, "1/59") == 166        # human: nearest within 3 %
    with pytest.raises(InvalidValue, match=r"1/3 \(3333\) is not one of the allowed values"):
        check_value(EXPOSURE, "1/3")


def test_messages_name_the_property_and_show_both_forms() -> None:
    with pytest.raises(InvalidValue) as err:
        check_value(FNUMBER, "8")
    assert str(err.value).startswith("FNumber: f/0.08 (8) is not one of the allowed values: "
                                     "f/2.8 (280), f/4 (400)")
    with pytest.raises(InvalidValue) as err:
        check_value(EXPOSURE, "inf")
    assert str(err.value) == ("ExposureTime: 'inf' is not an integer (raw value) nor a form like "
                              "1/250, 0.5 or 2\"")
    with pytest.raises(InvalidValue, match="is read-only"):
        check_value(DevicePropDesc(DPC.BatteryLevel, DT.UINT8, 0, 1, 1, None), "1")


def test_range_and_step() -> None:
    desc = DevicePropDesc(DPC.ExposureBiasCompensation, DT.INT16, 1, 0, 0,
                          PropRange(-3000, 3000, 333))
    assert check_value(desc, "-2001") == -2001
    assert check_value(desc, "-0xa6b") == -2667
    assert check_value(desc, "-2/3 EV") == -669      # snapped onto the step grid
    with pytest.raises(InvalidValue, match="not on the allowed steps"):
        check_value(desc, "1")
    with pytest.raises(InvalidValue, match=r"outside the allowed range -3 EV \(-3000\)\.\.\+3 EV"):
        check_value(desc, "3330")
    assert describe_form(desc) == "range -3 EV..+3 EV step 333"


def test_arrays_and_strings() -> None:
    arr = DevicePropDesc(0xD100, DT.AUINT8, 1, (), (), None)
    assert check_value(arr, "[1, 2, 3]") == check_value(arr, "1 2,3") == (1, 2, 3)
    with pytest.raises(InvalidValue, match="does not fit"):
        check_value(arr, "1, 256")
    name = DevicePropDesc(DPC.DeviceFriendlyName, DT.STR, 1, "", "", None)
    assert check_value(name, "  Studio camera \n") == "  Studio camera "
    for bad in ("x" * 300, "a\x00b", "\ud800"):
        with pytest.raises(InvalidValue):
            check_value(name, bad)


def test_resolve_property() -> None:
    assert resolve_property("exposuretime", [DPC.ExposureTime]) == DPC.ExposureTime
    assert resolve_property("0x500d", []) == resolve_property("500D", []) == 0x500D
    for bad in ("Shininess", "0x10000", "0x", "inf"):
        with pytest.raises(InvalidValue):
            resolve_property(bad, [DPC.ExposureTime])


# ------------------------------------------------------------------ properties of the codec
ALL_INT_TYPES = [DT.INT8, DT.UINT8, DT.INT16, DT.UINT16, DT.INT32, DT.UINT32, DT.INT64, DT.UINT64]
CODES = [DPC.ExposureTime, DPC.FNumber, DPC.ExposureIndex, DPC.ExposureBiasCompensation,
         DPC.WhiteBalance, DPC.BatteryLevel]


@given(code=st.sampled_from(CODES), datatype=st.sampled_from(ALL_INT_TYPES),
       values=st.lists(st.integers(-(1 << 63), (1 << 64) - 1), min_size=1, max_size=12))
def test_every_listed_value_round_trips_in_both_forms(code: int, datatype: int,
                                                      values: list[int]) -> None:
    desc = DevicePropDesc(code, datatype, 1, 0, 0, PropEnum(tuple(values)))
    for v in values:
        try:
            validate(desc, v)
        except InvalidValue:
            continue          # does not fit the datatype: the camera cannot list it either
        assert check_value(desc, str(v)) == v
        human = format_value(code, v)
        if human != str(v):
            got = check_value(desc, human)
            # a printed human form reads back as the same value, or as a listed neighbour
            # within the form's snapping tolerance (two listed values closer than 3 %)
            assert got == v or abs(got - v) <= HUMAN_FORMS[code].tolerance(v) + 1, (human, got)


@given(code=st.sampled_from([*CODES, DPC.DateTime, DPC.DeviceFriendlyName]),
       text=st.one_of(st.text(max_size=40),
                      st.from_regex(r"[+-]?[0-9fFiIsSoOeEvV./\" x-]{0,12}", fullmatch=True)))
def test_any_text_gives_a_valid_value_or_invalid_value(code: int, text: str) -> None:
    datatype = DT.STR if code in (DPC.DateTime, DPC.DeviceFriendlyName) else DT.UINT16
    desc = DevicePropDesc(code, datatype, 1, 0 if datatype != DT.STR else "", 0 if datatype != DT.STR else "",
                          PropRange(0, 60000, 1) if datatype != DT.STR else None)
    try:
        value = parse_value(desc, text)
    except InvalidValue:
        return
    try:
        validate(desc, value)
    except InvalidValue:
        return
    check_value(desc, text)   # parse + validate agreed: the one entry point agrees too


# ------------------------------------------------------------------ the sweep
NUMERIC_BAD = [
    "inf", "-inf", "+inf", "Infinity", "1e309", "-1e309", "1e3", "1E2", "nan", "NaN", "-nan",
    "", " ", "\n", "\t\n", "0x", "0x-1", "0xg", "1_000", "\u0663", "\uff11", "1.5.5", "--1", "+-1",
    "0b101", "0o7", "1,", "abc", "1 2", "\x00", "1\x00", "1/0", "0/0", "1/", "/2", "1//2",
    "f/", "f/0", "f/-2", "f/inf", "f/nan", "f/1e309", "F", "ISO", "ISO -1", "ISO inf",
    "ISO 1e309", "ISO 1.5", "+1/0 EV", "EV", "1e309 EV", "nan EV", "inf EV",
    "99999999999999999999999999", "-99999999999999999999", "9" * 5000, '"', "s", '1e309"',
    "inf s", "0s", "-1/250", "1/-250", "0.0", "-0.5", "1/1e309", "1/nan", "0x1p3", "1j",
    "None", "True", "[]", "[1]", "{}", "-", "+", ".", "..", "1..2", "x" * 20000,
]
STRING_BAD = ["x" * 255, "y" * 1000, "a\x00b", "\x00", "\ud800", "z\udfff"]
DATETIME_BAD = [
    "garbage", "now please", "2024-13-01 00:00", "2024-02-30", "2024-02-30T00:00",
    "20241301T000000", "20240230T000000", "2024", "2024-", "0000-01-01 00:00", "10000-01-01",
    "20240101T250000", "20240101T126000", "20240101T120060", "20240101", "T120000",
    "2024-05-01 12:30:00+25:00", "20240101T120000+2500", "20240101T120000+0099", "", "\n",
    "2024-05-01 12:30:61", "20240101T120000.5Z extra", "2024/05/01 12:30", "1/250", "inf",
    "1e309", "nan", "\x00", "2024-05-01\x0012:00", "\ud800", "x" * 300, "-20240101T120000",
    "+20240101T120000", "20240101t120000", "2024-W01-1", "yesterday", "0",
]


def _out_of_form(desc: DevicePropDesc, rng: random.Random) -> list[str]:
    """Values that parse but are not allowed: raw integers off the list or out of range,
    human forms of unlisted values."""
    values = list(desc.form.values) if isinstance(desc.form, PropEnum) else []
    out: list[str] = []
    while len(out) < 30:
        v = rng.choice([rng.randrange(0, 1 << 16), rng.randrange(0, 1 << 32), -rng.randrange(1, 99)])
        if v not in values:
            out.append(str(v))
    extra = {DPC.ExposureTime: ["1/3", "45s", "1/100000", '100"', "0.07"],
             DPC.FNumber: ["f/1.0", "f/64", "f/3.3", "1.1", "F100"],
             DPC.ExposureIndex: ["ISO 99", "ISO 100000", "ISO 0", "ISO 65536"],
             DPC.WhiteBalance: ["0", "8", "65535", "65536"]}
    return out + extra.get(desc.code, [])


def bad_inputs(descs: dict[int, DevicePropDesc]) -> Iterator[tuple[int, str]]:
    """(property code, text) pairs that must all be refused."""
    rng = random.Random(10)
    for code, desc in descs.items():
        if not desc.writable:
            for text in ("0", "50", "100", "1/250"):
                yield code, text
        elif code == DPC.DateTime:
            for text in DATETIME_BAD:
                yield code, text
        elif desc.datatype == DT.STR:
            for text in STRING_BAD:
                yield code, text
            if isinstance(desc.form, PropEnum):
                for text in ("1x1", "6000X4000", "6000x4000 ", "", "0", "inf"):
                    yield code, text
        else:
            for text in NUMERIC_BAD:
                yield code, text
            for text in _out_of_form(desc, rng):
                yield code, text


@pytest.fixture
def camera_session() -> Iterator[tuple[object, Session]]:
    camera = make_camera(None, "android-mtp", folders=1, files_per_folder=1)
    session = Session(InProcessTransport(camera)).open()
    try:
        yield camera, session
    finally:
        session.close()
        camera.store.close()


def _descs(session: Session) -> dict[int, DevicePropDesc]:
    return {c: session.get_device_prop_desc(c)
            for c in session.device_info.device_properties_supported}


def test_sweep_through_the_library_reaches_the_camera_zero_times(camera_session) -> None:
    camera, session = camera_session
    descs = _descs(session)
    assert {DPC.ExposureTime, DPC.FNumber, DPC.DateTime, DPC.ImageSize} <= set(descs)
    tried = 0
    before = camera.stats.count(OC.SetDevicePropValue)
    for code, text in bad_inputs(descs):
        with pytest.raises(InvalidValue) as err:
            set_property(session, descs[code], text)
        assert "\n" not in str(err.value) and len(str(err.value)) < 2000
        tried += 1
    assert tried >= 400
    assert camera.stats.count(OC.SetDevicePropValue) == before   # not one reached the camera
    # and the good forms do reach it
    set_property(session, descs[DPC.ExposureTime], "1/250")
    set_property(session, descs[DPC.DateTime], "2024-05-01 12:30:00")
    assert camera.stats.count(OC.SetDevicePropValue) == before + 2
    assert session.get_device_prop_value(DPC.ExposureTime) == 40


def test_sweep_through_ptpctl_exits_2_and_reaches_the_camera_zero_times(
        camera_session, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every bad value through ptpctl's own code (argument parsing, property lookup,
    the services call, the error exit).  The device is the test's in-process camera and
    session, so a run costs well under a millisecond; test_ptpctl covers the same errors
    over USB and PTP/IP."""
    camera, session = camera_session
    from ptpfs import connect

    class KeptOpen:
        """The fixture's session; ptpctl's close() at the end of a run leaves it open."""

        def __getattr__(self, name: str) -> object:
            return getattr(session, name)

        def close(self) -> None:
            pass

    monkeypatch.setattr(connect, "open_session", lambda spec, **kw: KeptOpen())
    cases = list(bad_inputs(_descs(session)))
    before = camera.stats.count(OC.SetDevicePropValue)
    for code, text in cases:
        rc = ptpctl.main(["--set-property", f"{property_name(code)}={text}", "--device", "x"])
        err = capsys.readouterr().err
        assert rc == ptpctl.EXIT_USAGE, (code, text, err)
        assert err.startswith("ptpctl: ") and err.count("\n") == 1, err
    assert len(cases) >= 400
    assert camera.stats.count(OC.SetDevicePropValue) == before
    assert ptpctl.main(["--set-property", "ExposureTime=1/250", "--device", "x"]) == 0
    assert capsys.readouterr().out == "0x500d/ExposureTime = 1/250 (40)\n"
    assert camera.stats.count(OC.SetDevicePropValue) == before + 1


# ------------------------------------------------------------------ the README's examples
def _doc_text() -> str:
    return "\n".join((PROJECT / p).read_text(encoding="utf-8")
                     for p in ("README.md", "docs/ptpfs.md", "docs/library.md")
                     if (PROJECT / p).exists())


def readme_set_property_examples() -> list[str]:
    """Every ``--set-property NAME=VALUE`` the docs show (quoted values included)."""
    found = re.findall(r"--set-property (?:'([^']+)'|\"([^\"]+)\"|([^\s`|]+=[^\s`|]+))", _doc_text())
    return sorted({next(g for g in groups if g) for groups in found} - {"CODE=VALUE"})


def readme_echo_examples() -> list[tuple[str, str]]:
    """Every ``echo VALUE > …/properties.d/NAME`` the docs show, as (name, value)."""
    return sorted(set(re.findall(r"echo\s+(\S+)\s*>\s*\S*properties\.d/(\w+)", _doc_text())),
                  key=str)


def test_readme_has_property_examples() -> None:
    assert len(readme_set_property_examples()) >= 2
    assert len(readme_echo_examples()) >= 3


@pytest.mark.parametrize("assignment", readme_set_property_examples())
def test_readme_set_property_examples_run(assignment: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc = ptpctl.main(["--set-property", assignment, "--device", "sim"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    name = assignment.partition("=")[0]
    assert re.fullmatch(rf"0x[0-9a-f]{{4}}/{name} = .+\n", out, re.IGNORECASE), out
