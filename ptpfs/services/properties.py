"""Device property values: the one parser, formatter and validator.

Used by ``ptpctl --set-property``/``-d``, by ``/.ptp/properties.d`` and by
library users, so a value means the same everywhere.  A value is written in
either of two forms:

* the **raw** value, as the camera stores it: a plain integer (``80``,
  ``0x50``), a string, or integers separated by commas/spaces for arrays;
* a **human** form where the property has one, always recognisable by its
  shape so it never collides with a raw integer:

  ============================ ============================================
  ExposureTime (1/10000 s)     ``1/250``, ``0.5`` (seconds), ``2"``, ``2s``
  FNumber (x 100)              ``f/5.6``, ``F8``, ``5.6``
  ExposureIndex                ``ISO 400``
  ExposureBiasCompensation     ``+1/3 EV``, ``-0.7 EV``, ``-1 2/3 EV``
  (0.001 EV)
  DateTime                     ``2024-05-01 12:30:00`` (ISO 8601), ``now``
  ============================ ============================================

A bare integer is always the raw value (``ExposureTime=80`` is 80/10000 s,
``FNumber=8`` is f/0.08 and refused by a real camera's list).  A human value
is moved to the nearest value the camera lists within a few percent
(``1/60`` is the 0.0166 s cameras report as 166); a raw value must match
exactly.  Validation is total: a value that does not parse, does not fit the
datatype, or is outside the range/enumeration raises :class:`InvalidValue`
with a one-line message, and nothing is sent to the camera.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, Protocol

from ptpfs.errors import InvalidValue
from ptpfs.protocol.codes import DPC, DT, datatype_name, property_name
from ptpfs.protocol.datasets import DevicePropDesc, PropEnum, PropRange
from ptpfs.protocol.wire import (
    INT_TYPES,
    encode_value,
    format_datetime,
    is_array_type,
    parse_datetime,
)

#: Most digits in one number (a 128-bit integer has 39).
MAX_DIGITS = 40

_LONG_NUMBER = re.compile(r"[0-9]{41,}", re.ASCII)   # more than MAX_DIGITS digits

#: Longest text accepted as a value (a PTP string holds 254 characters; arrays a few thousand).
MAX_TEXT = 16384

_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)", re.ASCII)
_DECIMAL = r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+"


class PropertySession(Protocol):
    """What :func:`set_property` needs from a :class:`ptpfs.session.Session`."""

    def get_device_prop_desc(self, code: int) -> DevicePropDesc: ...

    def get_device_prop_value(self, code: int, datatype: int | None = None) -> Any: ...

    def set_device_prop_value(self, code: int, value: Any, datatype: int | None = None) -> None: ...


# ----------------------------------------------------------------- human forms
def _decimal(part: str, text: str, what: str) -> Fraction:
    """*part* of *text* as an exact decimal (no exponents, inf or nan)."""
    if not re.fullmatch(_DECIMAL, part, re.ASCII) or len(part) > MAX_DIGITS:
        raise InvalidValue(f"{text.strip()[:40]!r} is not {what}")
    return Fraction(part)


def _exact_decimal(value: Fraction) -> str:
    """A fraction with a finite decimal expansion (units of 1/10000 or 1/1000) as text."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    sign = "-" if value < 0 else ""
    if not rest:
        return f"{sign}{whole}"
    digits = ""
    for _ in range(8):
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
        if not rest:
            break
    return f"{sign}{whole}.{digits.rstrip('0')}"


#: Shutter speeds cameras print as 1/N; 1/8000 s is stored as 1 (1.25 rounded).
_SPEEDS = (8000, 6400, 5000, 4000, 3200, 2500, 2000, 1600, 1250, 1000, 800, 640, 500, 400, 320,
           250, 200, 160, 125, 100, 80, 60, 50, 40, 30, 25, 20, 15, 13, 10, 8, 6, 5, 4, 3, 2)


def format_exposure(value: int) -> str:
    """ExposureTime (units of 1/10000 s) -> ``1/250``, ``0.3``, ``2"``."""
    if value <= 0:
        return str(value)
    if value % 10000 == 0:
        return f'{value // 10000}"'
    speeds = [d for d in _SPEEDS if round(Fraction(10000, d)) == value]
    if speeds:
        return f"1/{min(speeds, key=lambda d: abs(Fraction(10000, d) - value))}"
    frac = Fraction(value, 10000)
    if frac.numerator == 1:
        return f"1/{frac.denominator}"
    if value < 10000:
        denom = round(10000 / value)
        if denom > 1 and abs(10000 / denom - value) <= 0.02 * value:
            return f"1/{denom}"   # e.g. 166 -> 1/60 (cameras round 1/60 s to 0.0166 s)
    return _exact_decimal(frac)


def parse_exposure(text: str) -> int | None:
    """``1/250``, ``0.5``, ``2"``, ``2s`` -> units of 1/10000 s; None for a bare integer."""
    t = text.strip()
    unit = t.endswith('"') or (t.endswith("s") and not t.endswith("ss"))
    if unit:
        t = t[:-1].strip()
    if not unit and "/" not in t and "." not in t:
        return None
    hint = "an exposure time (try 1/250, 0.5 or 2\")"
    num, slash, den = t.partition("/")
    seconds = _decimal(num.strip(), text, hint)
    if slash:
        divisor = _decimal(den.strip(), text, hint)
        if divisor == 0:
            raise InvalidValue(f"{text.strip()!r} divides by zero")
        seconds /= divisor
    if seconds <= 0:
        raise InvalidValue(f"exposure time {text.strip()!r} must be positive")
    return round(seconds * 10000)


def format_fnumber(value: int) -> str:
    """FNumber (f-number x 100) -> ``f/5.6`` (the raw value when not positive)."""
    if value <= 0:
        return str(value)
    return f"f/{_exact_decimal(Fraction(value, 100))}"


def parse_fnumber(text: str) -> int | None:
    """``f/5.6``, ``F8``, ``5.6`` -> 560; None for a bare integer (the raw value)."""
    t = text.strip()
    m = re.fullmatch(r"[fF]\s*/?\s*(.*)", t)
    if m is None and "." not in t:
        return None
    number = _decimal((m.group(1) if m else t).strip(), text, "an f-number (try f/5.6)")
    if number <= 0:
        raise InvalidValue(f"f-number {t!r} must be positive")
    return round(number * 100)


def format_iso(value: int) -> str:
    """ExposureIndex -> ``ISO 400`` (the raw value when negative)."""
    return f"ISO {value}" if value >= 0 else str(value)


def parse_iso(text: str) -> int | None:
    """``ISO 400``, ``iso400`` -> 400; None without the ``ISO`` prefix."""
    m = re.fullmatch(r"[iI][sS][oO]\s*(\S*)", text.strip())
    if m is None:
        return None
    if not re.fullmatch(r"[0-9]{1,40}", m.group(1), re.ASCII):
        raise InvalidValue(f"{text.strip()!r} is not an ISO speed (try ISO 400)")
    return int(m.group(1))


_THIRDS = ((Fraction(1, 3), "1/3"), (Fraction(2, 3), "2/3"), (Fraction(1, 2), "1/2"))


def format_bias(value: int) -> str:
    """ExposureBiasCompensation (0.001 EV) -> ``+1/3 EV``, ``-1 2/3 EV``, ``0 EV``."""
    if value == 0:
        return "0 EV"
    sign = "+" if value > 0 else "-"
    whole, rest = divmod(abs(value), 1000)
    text = None
    for part, name in _THIRDS:
        if abs(rest - part * 1000) <= 2:
            text = f"{whole} {name}" if whole else name
    if text is None:
        text = _exact_decimal(Fraction(abs(value), 1000))
    return f"{sign}{text} EV"


def parse_bias(text: str) -> int | None:
    """``+1/3 EV``, ``-0.7``, ``-1 2/3 EV`` -> 0.001 EV units; None for a bare integer."""
    t = text.strip()
    ev = re.search(r"\s*[eE][vV]$", t)
    if ev:
        t = t[:ev.start()]
    if not ev and "/" not in t and "." not in t:
        return None
    if _LONG_NUMBER.search(t):
        raise InvalidValue(f"{t[:20]!r}… is not an exposure compensation (number too long)")
    m = re.fullmatch(r"([+-]?)\s*(?:([0-9]+)\s+(?=[0-9]+/))?(" + _DECIMAL + r")(?:\s*/\s*([0-9]+))?",
                     t, re.ASCII)
    if m is None:
        raise InvalidValue(f"{text.strip()!r} is not an exposure compensation (try +1/3 EV)")
    sign, whole, num, den = m.groups()
    amount = Fraction(num)
    if den is not None:
        if int(den) == 0:
            raise InvalidValue(f"{text.strip()!r} divides by zero")
        amount /= int(den)
    amount += int(whole or 0)
    return round((-amount if sign == "-" else amount) * 1000)


def format_datetime_human(value: str) -> str:
    """``20240501T123000`` -> ``2024-05-01 12:30:00`` (the raw text when it does not parse)."""
    when = parse_datetime(value) if isinstance(value, str) else None
    if when is None:
        return str(value)
    text = when.isoformat(sep=" ")
    return text.replace("+00:00", "Z") if when.utcoffset() is not None else text


_ISO_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                           r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?", re.ASCII)


def parse_datetime_human(text: str) -> str | None:
    """``2024-05-01 12:30[:00][+02:00]``, ``now`` -> PTP DateTime text; None if not that shape."""
    t = text.strip()
    if t.lower() == "now":
        return format_datetime(datetime.now().replace(microsecond=0))
    if not re.match(r"[0-9]{4}-", t, re.ASCII):
        return None
    if not _ISO_DATETIME.fullmatch(t):
        raise InvalidValue(f"{t[:40]!r} is not a date and time (try 2024-05-01 12:30:00)")
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise InvalidValue(f"{t!r} is not a date and time (try 2024-05-01 12:30:00)") from None
    return format_datetime(when)


@dataclass(frozen=True)
class HumanForm:
    """How one property's values read and print for people."""

    parse: Callable[[str], Any]     # text -> raw value, None if the text is not this form
    format: Callable[[Any], str]    # raw value -> text
    example: str                    # for messages: "1/250"
    tolerance: Callable[[int], float] = lambda v: 0.0   # how far a human value may snap


#: The properties that have a human form, by code.
HUMAN_FORMS: dict[int, HumanForm] = {
    DPC.ExposureTime: HumanForm(parse_exposure, format_exposure, '1/250, 0.5 or 2"',
                                lambda v: 0.03 * abs(v)),
    DPC.FNumber: HumanForm(parse_fnumber, format_fnumber, "f/5.6", lambda v: 0.03 * abs(v)),
    DPC.ExposureIndex: HumanForm(parse_iso, format_iso, "ISO 400"),
    DPC.ExposureBiasCompensation: HumanForm(parse_bias, format_bias, "+1/3 EV", lambda v: 40.0),
    DPC.DateTime: HumanForm(parse_datetime_human, format_datetime_human, "2024-05-01 12:30:00"),
}


# ----------------------------------------------------------------- formatting
def format_raw(value: Any) -> str:
    """The raw value: integers in decimal, strings as they are, arrays ``1, 2, 3``."""
    if isinstance(value, (list, tuple)):
        return ", ".join(format_raw(v) for v in value)
    return str(value)


def format_value(code: int, value: Any) -> str:
    """The value as people read it: the human form where the property has one, else raw."""
    form = HUMAN_FORMS.get(code)
    if form is not None and _fits_human(code, value):
        return form.format(value)
    return format_raw(value)


def format_both(code: int, value: Any) -> str:
    """``1/125 (80)``: the human form and the raw value, or the raw value alone when they agree."""
    human, raw = format_value(code, value), format_raw(value)
    return human if human == raw else f"{human} ({raw})"


def _fits_human(code: int, value: Any) -> bool:
    if code == DPC.DateTime:
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool)


def describe_form(desc: DevicePropDesc, both: bool = False) -> str:
    """``range 1/8000..30" step 1`` / ``enum 1/250 1/125`` / ``-`` (``both``: raw values too)."""
    def fmt(value: Any) -> str:
        return format_both(desc.code, value) if both else format_value(desc.code, value)

    form = desc.form
    if isinstance(form, PropRange):
        return f"range {fmt(form.minimum)}..{fmt(form.maximum)} step {format_raw(form.step)}"
    if isinstance(form, PropEnum):
        sep = ", " if both else " "
        return "enum " + sep.join(fmt(v) for v in form.values)
    return "-"


# ----------------------------------------------------------------- parsing
def _what(desc: DevicePropDesc) -> str:
    return property_name(desc.code)


def _int_bounds(datatype: int) -> tuple[int, int]:
    size, signed = INT_TYPES[datatype]
    bits = size * 8
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _parse_int(text: str, datatype: int, what: str, hint: str = "") -> int:
    t = text.strip()
    if not _INT.fullmatch(t):
        shown = t if len(t) <= 40 else t[:40] + "…"
        raise InvalidValue(f"{what}: {shown!r} is not an integer{hint}")
    body = t.lstrip("+-")
    value = int(body, 0) if body[:2].lower() == "0x" else int(body, 10)
    return _fit(-value if t.startswith("-") else value, datatype, what)


def _fit(value: int, datatype: int, what: str) -> int:
    low, high = _int_bounds(datatype)
    if not low <= value <= high:
        raise InvalidValue(f"{what}: {value} does not fit in 0x{datatype:x}/{datatype_name(datatype)} "
                           f"({low}..{high})")
    return value


def parse_value(desc: DevicePropDesc, text: str) -> Any:
    """The value *text* means for this property (raw or human form), not yet checked
    against the range/enumeration; raises :class:`InvalidValue`."""
    what = _what(desc)
    if not isinstance(text, str):
        raise InvalidValue(f"{what}: a value must be text, not {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise InvalidValue(f"{what}: value too long ({len(text)} characters)")
    dt = desc.datatype
    form = HUMAN_FORMS.get(desc.code)
    if dt == DT.STR:
        body = text.rstrip("\r\n")
        if form is not None:
            human = _human(form, body, what)
            if human is not None:
                return human
        return body
    t = text.strip()
    if not t:
        raise InvalidValue(f"{what}: empty value")
    if _LONG_NUMBER.search(t):
        raise InvalidValue(f"{what}: number too long ({t[:20]}…)")
    if dt in INT_TYPES:
        if form is not None:
            human = _human(form, t, what)
            if human is not None:
                return _snap(desc, _fit(human, dt, what), form)
            return _parse_int(t, dt, what, f" (raw value) nor a form like {form.example}")
        return _parse_int(t, dt, what)
    if is_array_type(dt):
        base = dt & ~DT.ARRAY
        items = [s for s in re.split(r"[\s,]+", t.strip("[]")) if s]
        return tuple(_parse_int(s, base, what) for s in items)
    raise InvalidValue(f"{what}: cannot set values of datatype 0x{dt:x}/{datatype_name(dt)}")


def _human(form: HumanForm, text: str, what: str) -> Any:
    try:
        return form.parse(text)
    except InvalidValue as exc:
        raise InvalidValue(f"{what}: {exc}") from None


def _snap(desc: DevicePropDesc, value: int, form: HumanForm) -> int:
    """A human value moved to the nearest allowed value within the form's tolerance."""
    tolerance = form.tolerance(value)
    if not tolerance:
        return value
    allowed: Sequence[Any] = ()
    if isinstance(desc.form, PropEnum):
        allowed = desc.form.values
    elif isinstance(desc.form, PropRange) and desc.form.step:
        lo, step = desc.form.minimum, desc.form.step
        below = lo + (value - lo) // step * step
        allowed = (below, below + step)
    if value in allowed:
        return value
    close = [v for v in allowed if isinstance(v, int) and abs(v - value) <= tolerance]
    return min(close, key=lambda v: abs(v - value)) if close else value


def validate(desc: DevicePropDesc, value: Any) -> None:
    """Raise :class:`InvalidValue` unless *value* fits the datatype and the descriptor's form."""
    what = _what(desc)
    dt = desc.datatype
    try:
        encode_value(dt, value)
    except InvalidValue as exc:
        raise InvalidValue(f"{what}: {exc}") from None
    except (TypeError, ValueError, OverflowError):
        raise InvalidValue(f"{what}: {value!r} is not a 0x{dt:x}/{datatype_name(dt)} value") from None
    if desc.code == DPC.DateTime and dt == DT.STR and parse_datetime(value) is None:
        raise InvalidValue(f"{what}: {value!r} is not a date and time "
                           "(try 2024-05-01 12:30:00 or 20240501T123000)")
    form = desc.form

    def show(v: Any) -> str:
        return format_both(desc.code, v)

    if isinstance(form, PropRange) and isinstance(value, int):
        lo, hi, step = form.minimum, form.maximum, form.step
        if not lo <= value <= hi:
            raise InvalidValue(f"{what}: {show(value)} is outside the allowed range "
                               f"{show(lo)}..{show(hi)}")
        if step and (value - lo) % step:
            raise InvalidValue(f"{what}: {show(value)} is not on the allowed steps "
                               f"({describe_form(desc)})")
    elif isinstance(form, PropEnum) and form.values and value not in form.values:
        allowed = ", ".join(show(v) for v in form.values)
        raise InvalidValue(f"{what}: {show(value)} is not one of the allowed values: {allowed}")


def check_value(desc: DevicePropDesc, text: str) -> Any:
    """Parse and validate *text* for a settable property: the value to send, or
    :class:`InvalidValue` (read-only property, bad syntax, out of range, not listed)."""
    if not desc.writable:
        raise InvalidValue(f"{_what(desc)} is read-only")
    value = parse_value(desc, text)
    validate(desc, value)
    return value


def resolve_property(text: str, supported: Sequence[int]) -> int:
    """A property code from hex (``0x500d``/``500d``) or a name (``ExposureTime``, any case)."""
    t = text.strip()
    wanted = t.lower()
    for code in supported:
        if property_name(code).lower() == wanted:
            return code
    for name, code in vars(DPC).items():
        if isinstance(code, int) and name.lower() == wanted:
            return code
    digits = wanted.removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{1,4}", digits, re.ASCII):
        raise InvalidValue(f"unknown property {text!r} (use a name from -p or a hex code)")
    return int(digits, 16)


def set_property(session: PropertySession, desc: DevicePropDesc, text: str) -> Any:
    """Check *text* against *desc* and set it on the camera; returns the value sent.

    Nothing reaches the camera unless the value passed :func:`check_value`.
    """
    value = check_value(desc, text)
    session.set_device_prop_value(desc.code, value, desc.datatype)
    return value
