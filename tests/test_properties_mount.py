"""Property values through a real mount: ``/.ptp/properties.d`` speaks the same language
as ptpctl (ptpfs.services.properties), refuses every bad value of the sweep with EINVAL
(EACCES for read-only properties) without sending anything, and the docs' ``echo``
examples work as shown."""

from __future__ import annotations

import errno
import os

import pytest
from fuse_helpers import run
from test_properties import _descs, bad_inputs, readme_echo_examples

from ptpfs.protocol.codes import DPC, OC, property_name
from ptpfs.services.properties import check_value

pytestmark = pytest.mark.fuse


@pytest.fixture
def mounted(sim_mount):
    m = sim_mount("android-mtp", folders=1, files_per_folder=1)
    return m.camera, m.session, m.path(".ptp", "properties.d")


def test_sweep_through_the_mount_reaches_the_camera_zero_times(mounted) -> None:
    camera, session, props = mounted
    descs = _descs(session)
    before = camera.stats.count(OC.SetDevicePropValue)
    tried = 0
    for code, text in bad_inputs(descs):
        try:
            data = (text + "\n").encode("utf-8")
        except UnicodeEncodeError:
            continue              # not writable as bytes; the library sweep covers it
        path = os.path.join(props, property_name(code))
        with pytest.raises(OSError) as err, open(path, "wb") as f:
            f.write(data)
        expected = {errno.EINVAL} if descs[code].writable else {errno.EACCES, errno.EPERM}
        assert err.value.errno in expected, (property_name(code), text[:40], err.value)
        tried += 1
    assert tried >= 400
    assert camera.stats.count(OC.SetDevicePropValue) == before
    # the values still read back, in their human form
    with open(os.path.join(props, "ExposureTime")) as f:
        assert f.read() == "1/125\n"


def test_docs_echo_examples_work_as_shown(mounted) -> None:
    _, session, props = mounted
    examples = readme_echo_examples()
    assert examples
    for value, name in examples:
        path = os.path.join(props, name)
        res = run(["bash", "-c", f"echo {value} > {path}"])
        assert res.returncode == 0, (name, value, res.stderr)
        with open(path) as f:
            shown = f.read().strip()
        # what the file shows reads back as the same value (human form, or raw when none)
        code = {property_name(c): c for c in session.device_info.device_properties_supported}[name]
        desc = session.get_device_prop_desc(code)
        assert check_value(desc, shown) == check_value(desc, value) == desc.current
    assert session.get_device_prop_value(DPC.ExposureTime) == 40   # the 1/250 example
