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


def test_a_refused_tracer_says_why_once():
    """trace-cmd on a kernel without function tracers (or without trace-cmd): one line that
    names the tool once and says what is missing and where it runs."""
    from nfteach import Lab

    with Lab("live") as lab:
        out = lab.run("sudo trace-cmd start -p function_graph -g nf_confirm")
    if out.status == 0:
        pytest.skip("this machine has trace-cmd and the function tracers: nothing is refused")
    text = out.output
    assert text.count("\n") == 1 and text.count("trace-cmd") == 1 + text.count("trace-cmd is not installed"), text
    assert text.startswith("nfteach: trace-cmd: ") and "--backend vm" in text, text
