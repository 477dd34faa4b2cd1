"""The conntrack model on its own: enable semantics, RST kill, TIME_WAIT, table full."""
import re

import pytest

from nfteach.sim.kernel.kernel import Kernel

PROFILES_WITH_MODULES = ["5.10", "6.1"]


def entries(lab, machine=""):
    out = lab.run(f"{machine}conntrack -L").output
    return [line for line in out.splitlines() if line.startswith("tcp ")]


@pytest.mark.parametrize("kernel", PROFILES_WITH_MODULES)
def test_module_loaded_but_no_hooks_until_enable_hooks(sim_lab, kernel):
    lab = sim_lab(kernel)
    r = lab.run("sudo conntrack -L")
    assert r.output.endswith(": 0 flow entries have been shown.\n")
    assert r.output.startswith("conntrack v1.4.7 (conntrack-tools)")  # bookworm userland, as on vm
    lsmod = lab.run("lsmod | grep '^nf_conntrack\\b'").output
    assert re.match(r"^nf_conntrack +\d+  1 nf_conntrack_netlink\n$", lsmod)
    assert "-200" not in lab.run("list-nf-hooks").output  # conntrack -L registered no hooks
    # modprobe on a loaded module ignores its parameters, as the real one does
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    assert entries(lab) == []
    assert lab.run("sudo rmmod nf_conntrack_netlink nf_conntrack").status == 0
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    (line,) = entries(lab)
    assert re.fullmatch(
        r"tcp      6 431999 ESTABLISHED src=192\.168\.122\.1 dst=192\.168\.122\.204 sport=(\d+) dport=22 "
        r"src=192\.168\.122\.204 dst=192\.168\.122\.1 sport=22 dport=\1 \[ASSURED\] mark=0 use=1", line)
    # enable_hooks=1 reaches every namespace of the kernel: the client is tracked too
    assert len(entries(lab, "@host ")) == 1


@pytest.mark.parametrize("kernel", PROFILES_WITH_MODULES)
def test_rmmod_in_use_and_unknown(sim_lab, kernel):
    lab = sim_lab(kernel)
    lab.run("conntrack -L")
    r = lab.run("rmmod nf_conntrack")
    assert (r.status, r.output) == (1, "rmmod: ERROR: Module nf_conntrack is in use by: nf_conntrack_netlink\n")
    r = lab.run("rmmod nf_nope")
    assert r.output == "rmmod: ERROR: Module nf_nope is not currently loaded\n"
    r = lab.run("modprobe nf_nope")
    assert r.output.startswith("modprobe: FATAL: Module nf_nope not found in directory /lib/modules/")


@pytest.mark.parametrize("kernel", PROFILES_WITH_MODULES)
def test_closed_port_rst_kills_entry_listener_ends_time_wait(sim_lab, kernel):
    lab = sim_lab(kernel)
    lab.run("modprobe nf_conntrack enable_hooks=1")
    assert lab.run("@host nc -w 1 -z 192.168.122.204 2570").status == 1
    assert not [e for e in entries(lab) if "dport=2570" in e]
    assert not [e for e in entries(lab, "@host ") if "dport=2570" in e]
    assert lab.run("@host nc -w 1 -z 192.168.122.204 22").status == 0
    tw = [e for e in entries(lab) if "TIME_WAIT" in e]
    assert len(tw) == 1 and "[ASSURED]" in tw[0] and "[UNREPLIED]" not in tw[0]
    assert re.match(r"tcp      6 1(19|20) TIME_WAIT", tw[0])


@pytest.mark.parametrize("kernel", PROFILES_WITH_MODULES)
def test_unconfirmed_list(sim_lab, kernel):
    lab = sim_lab(kernel)
    lab.run("modprobe nf_conntrack enable_hooks=1")
    r = lab.run("conntrack -L unconfirmed")
    assert r.output.endswith(": 0 flow entries have been shown.\n")


def test_table_full_early_drop_then_drop():
    k = Kernel("5.10")
    vm, host = k.netns("vm"), k.netns("host")
    k.stack.start_session(host, vm)
    k.modules.load("nf_conntrack", {"enable_hooks": "1"})
    k.stack.keystroke()
    k.stack.keystroke()
    k.stack.listen(vm, 9999, "blackhole")
    k.conntrack.nf_conntrack_max = 3
    k.conntrack.htable_size = 1  # hashsize=1: early_drop's 8-bucket scan sees every entry
    socks = [k.stack.connect(host, vm.addr, 9999) for _ in range(3)]
    k.settle(0.01)
    # session (ASSURED) + SYN_SENT entries; the 3rd SYN found the table full and evicted one
    assert vm.ct.stat["early_drop"] >= 1
    assert vm.ct.count <= 3
    assert all(s.state == "SYN_SENT" for s in socks)
    # with only ASSURED entries left, a new flow is dropped and the kernel says so
    k.conntrack.nf_conntrack_max = 1
    for ct in list(vm.ct.entries()):
        if not ct.status & 4:
            k.conntrack.nf_ct_delete(ct)
    k.stack.connect(host, vm.addr, 9999)
    k.settle(0.01)
    assert vm.ct.stat["drop"] >= 1
    assert any("nf_conntrack: table full, dropping packet" in m for m in k.messages)


def test_sysctl_and_errors(sim_lab):
    lab = sim_lab("5.10")
    assert lab.run("sysctl net.netfilter.nf_conntrack_max").output.startswith("sysctl: cannot stat")
    lab.run("modprobe nf_conntrack")
    assert lab.run("sysctl net.netfilter.nf_conntrack_max").output == "net.netfilter.nf_conntrack_max = 65536\n"
    assert lab.run("sysctl -w net.netfilter.nf_conntrack_max=abc").output == \
        'sysctl: setting key "net.netfilter.nf_conntrack_max": Invalid argument\n'
    assert lab.run("sysctl -w net.netfilter.nf_conntrack_max=10").output == "net.netfilter.nf_conntrack_max = 10\n"
