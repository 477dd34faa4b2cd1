"""The course on a real kernel: every notebook top to bottom on the vm backend (Debian 5.10),
so the cells tagged ``vm-only`` run for real and the sanity checks hold on a real kernel."""
import os
import shutil
import warnings

import pytest

pytestmark = pytest.mark.vm


def _vm_unavailable():
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    from nfteach.vm.disk import image_dir

    if not (image_dir("5.10") / "version").exists() and not os.environ.get("CI"):
        return "kernel 5.10 is not built (run `nfteach vm fetch --kernel 5.10`)"
    return None


def test_course_on_vm_5_10():
    why = _vm_unavailable()
    if why:
        pytest.skip(why)
    from nfteach.tour import run_course, run_notebook

    steps = run_course(backend="vm", kernel="5.10")
    # A real kernel under software emulation can lose a race the course does not control
    # (seen in CI: a guest that hung for 600 s; a bpftrace map without the drop's stack, once
    # in 10+ runs): a failing notebook gets one more run, and the report shows the first
    # failure whole. Failing twice fails the test.
    for i, s in enumerate(steps):
        if not s.ok or s.sanity_ran != s.sanity:
            warnings.warn(f"vm course: {s.line()} — running it once more.\n{s.detail}", stacklevel=1)
            steps[i] = run_notebook(s.path, "vm", "5.10")
    bad = [f"{s.line()}\n{s.detail}" for s in steps if not s.ok or s.sanity_ran != s.sanity]
    assert not bad, "\n".join(bad)
    # on vm, no vm-only cell explained itself away: they all ran
    assert not [s.name for s in steps if "vm-only" in s.skipped]
