"""The capability probe and the doctor report measure this machine (root only)."""
import pytest

from nfteach.live import capability, doctor

pytestmark = pytest.mark.live


def test_probe_and_report():
    caps = capability.probe()
    assert caps["root"] and caps["live_ok"]
    assert set(caps["bpftrace"]) == {"kprobe", "kfunc", "tracepoint"}
    text = doctor.report(caps)
    assert text.startswith("nfteach doctor")
    assert "nft list hooks" in text and "bpftrace tracepoint" in text
    assert "Traceback" not in text
    if caps["kernel"].startswith("6.18") and not caps["kcore"]:
        # this project's CI machine: a Firecracker guest without kprobes or /proc/kcore
        assert caps["bpftrace"]["tracepoint"] is True
        assert caps["bpftrace"]["kprobe"] is not True
        assert caps["nft_list_hooks"] is False
        assert "use --backend vm" in text
