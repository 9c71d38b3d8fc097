"""Names from the device are untrusted: sanitising and de-duplication."""

from hypothesis import given
from hypothesis import strategies as st

from ptpfs.services.naming import NAME_MAX, sanitize, unique_names, with_suffix


def valid_component(name: str) -> bool:
    raw = name.encode("utf-8")
    return (bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name
            and len(raw) <= NAME_MAX and not any(ord(c) < 0x20 for c in name))


def test_hostile_names_become_safe() -> None:
    assert sanitize("../x") == ".._x"
    assert sanitize("a/b") == "a_b"
    assert sanitize("..") == "__"
    assert sanitize(".") == "_"
    assert sanitize("") == "_"
    assert sanitize(None) == "_"
    assert sanitize("a\0b\nc\x7f") == "a_b_c_"
    assert sanitize("IMG_0001.JPG") == "IMG_0001.JPG"


def test_long_names_keep_extension_and_fit() -> None:
    name = "é" * 300 + ".JPG"
    safe = sanitize(name)
    assert safe.endswith(".JPG")
    assert len(safe.encode()) <= NAME_MAX
    assert with_suffix("x" * 255, 2).endswith("~2")
    assert len(with_suffix("x" * 255, 2).encode()) <= NAME_MAX


def test_duplicates_get_suffix_by_handle_order() -> None:
    names = unique_names([(7, "IMG_0001.JPG"), (3, "IMG_0001.JPG"), (5, "IMG_0001.JPG")])
    assert names == {3: "IMG_0001.JPG", 5: "IMG_0001~2.JPG", 7: "IMG_0001~3.JPG"}


def test_suffix_never_steals_a_real_name() -> None:
    names = unique_names([(1, "A.JPG"), (2, "A.JPG"), (3, "A~2.JPG")])
    assert names[1] == "A.JPG" and names[3] == "A~2.JPG"
    assert names[2] == "A~3.JPG"


def test_sanitised_collisions_are_unique() -> None:
    names = unique_names([(1, "a/b"), (2, "a_b"), (3, "a\nb")])
    assert sorted(names.values()) == ["a_b", "a_b~2", "a_b~3"]
    assert names[1] == "a_b"


def test_reserved_names() -> None:
    assert unique_names([(1, ".ptp")], reserved=(".ptp",)) == {1: ".ptp~2"}


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.text(max_size=300)),
                unique_by=lambda t: t[0], max_size=30))
def test_unique_names_properties(items: list[tuple[int, str]]) -> None:
    names = unique_names(items)
    assert set(names) == {h for h, _ in items}
    assert len(set(names.values())) == len(items)
    assert all(valid_component(n) for n in names.values())
    # deterministic regardless of input order
    assert unique_names(list(reversed(items))) == names
