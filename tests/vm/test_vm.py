"""The vm tier: real Debian kernels (5.10, 6.1, 6.12) under QEMU, end to end."""
import os
import re
import threading
import time

import pytest

from nfteach.lab import Lab
from nfteach.vm.backend import VmBackend
from nfteach.vm.cli import GOLDEN, SCENARIOS, capture
from nfteach.vm.fetch import KERNELS

try:
    from nfteach.normalize import normalize
except ImportError:  # pragma: no cover - the shared one is missing: compare raw
    def normalize(text):
        return text

pytestmark = pytest.mark.vm

HOOK_OF_IPTABLES_FILTER = {"5.10": "iptable_filter_hook", "6.1": "ipt_do_table", "6.12": "ipt_do_table"}
CONFIRM = {"5.10": "ipv4_confirm", "6.1": "ipv4_confirm", "6.12": "nf_confirm"}

# A tracing script in the article's style: struct casts need kernel types (BTF or headers).
SYN_BT = """kprobe:ipv4_conntrack_in
{
	$skb = (struct sk_buff *)arg1;
	$iph = (struct iphdr *)($skb->head + $skb->network_header);
	$th = (struct tcphdr *)($skb->head + $skb->transport_header);
	if ($iph->protocol == 6 && $th->dest == 2570 && $th->syn == 1) {
		printf("syn to 2570 seen by %s from %s\\n", func, ntop($iph->saddr));
	}
}
"""


def test_boot_and_session(vm_lab, kernel):
    release = vm_lab.run("uname -r").output.strip()
    # 5.10.0-32-cloud-amd64, 6.1.0-57-cloud-amd64, 6.12.118+deb13-cloud-amd64
    assert re.match(re.escape(kernel) + r"\.\d+[-+][0-9a-z]+-cloud-amd64$", release), release
    b = vm_lab.backend  # `ss` is not a lab command: ask the backend directly
    ss = b.exec_raw(["ss", "-tn"]).stdout
    assert "192.168.122.204:22" in ss and "192.168.122.1:" in ss
    assert "192.168.122.204:22" in b.exec_raw(["ss", "-tn"], machine="host").stdout
    # no network for the guest: only lo and the lab's veth
    links = vm_lab.run("ip -o link").output
    assert sorted(x.split(":")[1].strip().split("@")[0] for x in links.splitlines()) == ["eth0", "lo"]


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """Every scenario captured once per kernel by `nfteach capture` into a temp dir."""
    out = {}

    def get(kernel):
        if kernel not in out:
            d = tmp_path_factory.mktemp(f"golden-{kernel}")
            capture(kernel, d)
            out[kernel] = d
        return out[kernel]

    return get


def test_article_on_real_kernel(captured, kernel):
    text = (captured(kernel) / "article.txt").read_text()
    blocks = text.split("vm$ ")
    by_cmd = {}
    for b in blocks[1:]:
        cmd, _, out = b.partition("\n")
        by_cmd.setdefault(cmd, []).append(out)
    # the drop at iptables INPUT (priority 0) leaves no entry; at INT_MAX it does
    after_legacy = by_cmd["sudo conntrack -L"][2]
    assert "dport=2570" not in after_legacy
    after_nft = by_cmd["sudo conntrack -L"][3]
    assert "SYN_SENT" in after_nft and "dport=2570 [UNREPLIED]" in after_nft
    hooks = by_cmd["sudo list-nf-hooks"]
    assert "       -400 → ipv4_conntrack_defrag" in hooks[0]
    assert f"          0 → {HOOK_OF_IPTABLES_FILTER[kernel]}" in hooks[0]
    assert f" 2147483647 → {CONFIRM[kernel]}, nft_do_chain_ipv4" in hooks[1]
    assert "counter packets 1 bytes 60 drop" in by_cmd["sudo nft list chain ip my_table my_input"][0]


def _skeleton(text):
    """Commands in order, each with whether it printed anything."""
    out, cmd, printed = [], None, False
    for line in text.splitlines():
        if line.startswith(("vm$ ", "host$ ")):
            if cmd is not None:
                out.append((cmd, printed))
            cmd, printed = line, False
        elif line.strip():
            printed = True
    if cmd is not None:
        out.append((cmd, printed))
    return out


def _same(name, new, golden):
    """Equal after normalize; for trace-* scenarios the same commands with output where the
    golden has output: a real kernel's traces vary from run to run (timer interrupts inside a
    function_graph, softirq run inline or by ksoftirqd, bpftrace map print order)."""
    if name.startswith("trace-"):
        return _skeleton(normalize(new)) == _skeleton(normalize(golden))
    return normalize(new) == normalize(golden)


def test_goldens_match(captured, kernel):
    new_dir = captured(kernel)
    names = sorted(p.stem for p in SCENARIOS.glob("*.lab"))
    assert names and {p.stem for p in new_dir.glob("*.txt")} == set(names)
    mismatched = []
    for name in names:
        golden = GOLDEN / kernel / f"{name}.txt"
        assert golden.exists(), f"no committed golden {golden}; run `nfteach capture --kernel {kernel}`"
        want = golden.read_text()
        if _same(name, (new_dir / f"{name}.txt").read_text(), want):
            continue
        # one retry: timing races of a real kernel (SYN retransmit vs `nc -w 1`)
        capture(kernel, new_dir, [name])
        if not _same(name, (new_dir / f"{name}.txt").read_text(), want):
            mismatched.append(name)
    assert not mismatched, f"{kernel}: goldens differ for {mismatched} (see {new_dir})"


def test_bpftrace_struct_casts_and_jobs(vm_lab, kernel):
    vm_lab.write_file("/root/syn.bt", SYN_BT)
    assert vm_lab.run("sudo modprobe nf_conntrack enable_hooks=1").status == 0
    assert vm_lab.run("sudo bpftrace /root/syn.bt &").status == 0
    vm_lab.run("@host nc -w 1 -z 192.168.122.204 2570")
    vm_lab.run("sleep 1")
    r = vm_lab.run("kill -INT %1")
    assert "Attaching 1 probe..." in r.output
    assert "syn to 2570 seen by ipv4_conntrack_in from 192.168.122.1" in r.output
    assert not vm_lab.jobs


def test_qemu_killed_mid_scenario(kernel):
    b = VmBackend(kernel=kernel)
    lab = Lab(backend=b)
    try:
        assert lab.run("sudo modprobe nf_conntrack enable_hooks=1").status == 0
        run_dir, pid = b.qemu.run_dir, b.qemu_pid
        b.kill_qemu()
        time.sleep(0.5)
        r = lab.run("sudo conntrack -L")
        assert r.status == 2
        assert r.output.count("\n") == 1 and r.output.startswith("nfteach: ")
        assert "stopped" in r.output and "starts a new one" in r.output
        assert not run_dir.exists(), "the dead guest's run directory is removed"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        # and the lab starts again, from the article's starting point
        r = lab.run("sudo conntrack -L")
        assert r.status == 0 and "0 flow entries" in r.output
    finally:
        lab.close()
    assert b.qemu is None


def _start_all(things) -> list:
    """``start()`` each of ``things`` in a thread of its own, at once; the errors raised."""
    errors = []

    def start(x):
        try:
            x.start()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start, args=(x,)) for x in things]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_vms_at_once(need_kernel):
    need_kernel("5.10")
    need_kernel("6.1")
    backends = [VmBackend(kernel="5.10"), VmBackend(kernel="6.1")]
    try:
        errors = _start_all(backends)
        assert not errors, errors
        a, c = backends
        assert a.qemu.run_dir != c.qemu.run_dir
        assert a.qemu.serial_path != c.qemu.serial_path and a.qemu.qmp_path != c.qemu.qmp_path
        assert a.run("vm", ["nft", "add", "table", "ip", "only_in_a"]).status == 0
        assert "only_in_a" in a.run("vm", ["nft", "list", "tables"]).text
        assert "only_in_a" not in c.run("vm", ["nft", "list", "tables"]).text
        assert a.run("vm", ["uname", "-r"]).text.startswith("5.10.")
        assert c.run("vm", ["uname", "-r"]).text.startswith("6.1.")
    finally:
        for b in backends:
            b.close()
    for b in backends:
        assert b.qemu is None


def test_unknown_kernel_is_one_line():
    from nfteach.model.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable) as e:
        VmBackend(kernel="4.19")
    assert "5.10" in str(e.value) and "\n" not in str(e.value)


def test_goldens_are_committed_for_every_scenario():
    for kernel in KERNELS:
        for lab in SCENARIOS.glob("*.lab"):
            assert (GOLDEN / kernel / f"{lab.stem}.txt").exists(), (kernel, lab.stem)


def test_status_command(capsys):
    from nfteach.vm.cli import status

    assert status() == 0
    assert "kernel 5.10" in capsys.readouterr().out



def test_a_new_lab_is_restored_from_the_saved_guest(vm_lab, kernel):
    from nfteach.vm import saved

    vm_lab.start()
    b = vm_lab.backend
    if saved.cold_only():
        pytest.skip(f"{saved.ENV_COLD} is set: every lab boots cold")
    assert b.start_mode.startswith("restored"), b.start_mode
    assert "restored from a saved guest" in vm_lab.describe() and b.qemu.accel.name in ("tcg", "kvm")
    # the guest's wall clock is this machine's, not the one it was saved with
    guest_now = float(b.exec_raw(["date", "+%s"]).stdout)
    assert abs(guest_now - time.time()) < 30
    # the article's tools are there, as a cold-booted lab writes them
    assert "kprobe" in b.exec_raw(["cat", "/vagrant/tools/trace-conntrack-prerouting.bt"]).stdout


def test_cold_boot_still_works(kernel):
    """NFTEACH_VM_COLD=1 / restore=False: the kernel boots, the lab starts where the article does."""
    with Lab(backend=VmBackend(kernel=kernel, restore=False)) as lab:
        b = lab.backend
        assert b.start_mode.startswith("cold boot"), b.start_mode
        assert lab.run("uname -r").output.startswith(kernel + ".")
        assert "192.168.122.204:22" in b.exec_raw(["ss", "-tn"]).stdout
        assert "0 flow entries" in lab.run("sudo conntrack -L").output
        assert "kprobe" in b.exec_raw(["cat", "/vagrant/tools/trace-conntrack-prerouting.bt"]).stdout


def _open_files(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def test_two_labs_restored_from_one_saved_guest_are_independent(kernel, conntrack_until):
    from nfteach.vm import saved

    if saved.cold_only():
        pytest.skip(f"{saved.ENV_COLD} is set: every lab boots cold")
    labs = [Lab(backend=VmBackend(kernel=kernel)) for _ in range(2)]
    try:
        errors = _start_all(labs)
        assert not errors, errors
        a, c = (lab.backend for lab in labs)
        assert a.start_mode.startswith("restored") and c.start_mode.startswith("restored")
        assert a.qemu.incoming == c.qemu.incoming and a.qemu.disk == c.qemu.disk, "one saved guest"
        # each writes to its own overlay, in its own run directory, on top of the frozen disk
        for b in (a, c):
            files = _open_files(b.qemu_pid)
            assert any(f.startswith(str(b.qemu.run_dir)) and "deleted" in f for f in files), files
            assert oct(os.stat(b.qemu.disk).st_mode & 0o222) == "0o0", "the saved disk is read-only"
        # files
        labs[0].write_file("/root/only-in-a", "a\n")
        assert a.exec_raw(["cat", "/root/only-in-a"]).stdout == "a\n"
        assert c.exec_raw(["cat", "/root/only-in-a"]).status != 0
        # rules and conntrack tables
        assert labs[0].run("sudo nft add table ip only_in_a").status == 0
        assert labs[0].run("sudo modprobe nf_conntrack enable_hooks=1").status == 0
        labs[0].run("@host nc -z -w 1 192.168.122.204 22")
        assert "TIME_WAIT" in conntrack_until(labs[0], "TIME_WAIT")
        assert "only_in_a" not in labs[1].run("sudo nft list tables").output
        assert "0 flow entries" in labs[1].run("sudo conntrack -L").output
        # each lab's kernel draws its own random numbers after the restore
        uuids = [b.exec_raw(["cat", "/proc/sys/kernel/random/uuid"]).stdout for b in (a, c)]
        assert uuids[0] != uuids[1]
    finally:
        for lab in labs:
            lab.close()
