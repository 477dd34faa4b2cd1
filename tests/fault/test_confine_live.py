"""Every escape from a ``live`` lab command that issue 15 lists, tried for real.

Each case runs twice: as the learner types it (``lab.run``: the option filters may explain
a refusal in one line) and **past the filters** (``raw``: the argv goes straight into the
sandbox, as if a filter had a hole). Either way the machine must not change: its files,
machine-wide sysctls, root-namespace links and rulesets, cgroups and mounts are compared
before and after (``machine.py``), and a secret file / a Unix socket of the machine are
never read or reached. Nothing here writes a machine-wide setting if confinement holds;
the sysctl cases target ``kernel.domainname``, which is per UTS namespace anyway, and
prove the write is refused *inside* the sandbox.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from . import machine

pytestmark = pytest.mark.live


WHY = machine.why_no_live()
if WHY:
    pytest.skip(WHY, allow_module_level=True)

TOKEN = f"NFTEACH-SECRET-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def lab():
    from nfteach.lab import Lab
    from nfteach.live.backend import LiveBackend

    with Lab(LiveBackend(timeout=30)) as lab:
        yield lab


@pytest.fixture(scope="module")
def secret():
    """A file of the machine the lab must not read: outside every directory the sandbox shows."""
    d = Path("/var/lib") / f"nfteach-fault-{uuid.uuid4().hex[:8]}"
    d.mkdir(mode=0o700)
    f = d / "secret"
    f.write_text(f"{TOKEN}\n")
    f.chmod(0o600)
    yield str(f)
    f.unlink()
    d.rmdir()


@pytest.fixture(autouse=True)
def machine_unchanged():
    before = machine.snapshot()
    yield
    after = machine.snapshot()
    assert machine.changes(before, after) == [], "the machine changed"


def require_confinement(lab, *kinds):
    """Fail (before any write is tried) unless a sandboxed command has namespaces of its own:
    a broken sandbox must make these tests fail, never let them change the machine."""
    for kind in kinds or ("mnt", "pid", "uts", "ipc"):
        inside = raw(lab, ["readlink", f"/proc/self/ns/{kind}"]).stdout.strip()
        assert inside and inside != os.readlink(f"/proc/self/ns/{kind}"), f"no {kind} namespace of its own"


def raw(lab, argv, host=False):
    """Run ``argv`` in the lab's sandbox past every option filter."""
    from nfteach.live.runner import run_argv

    return run_argv(lab.backend._full_argv("host" if host else "vm", argv), timeout=30)


def both(lab, line, argv, host=False):
    """(lab.run result text, raw Output) of one escape attempt."""
    r = lab.run(("@host " if host else "") + line)
    assert "Traceback" not in r.output and "internal error" not in r.output, r.output
    return r.output, raw(lab, argv, host)


# -- files of the machine -----------------------------------------------------------------
@pytest.mark.parametrize("tool", [
    ["nft", "-f"], ["bpftrace"], ["dmesg", "-F"], ["cat"],
])
def test_secret_file_is_not_readable(lab, secret, tool):
    argv = [*tool, secret]
    out = raw(lab, argv)
    assert TOKEN not in out.text, f"{argv} printed the machine's secret"
    r = lab.run(" ".join(argv))
    assert TOKEN not in r.output


def test_shadow_is_not_there(lab):
    out = raw(lab, ["cat", "/etc/shadow"])
    assert out.status != 0 and "No such file" in out.stderr
    out = raw(lab, ["nft", "-f", "/etc/shadow"])
    assert "root:" not in out.text


def test_bpftrace_cat_reads_no_file_of_the_machine(lab, secret):
    prog = f'BEGIN {{ cat("{secret}"); exit(); }}'
    text, out = both(lab, f"bpftrace -e '{prog}'", ["bpftrace", "-e", prog])
    assert TOKEN not in text and TOKEN not in out.text


def test_bpftrace_output_file_stays_in_the_sandbox(lab, tmp_path):
    require_confinement(lab, "mnt")
    target = tmp_path / "written-by-bpftrace"
    prog = 'BEGIN { printf("hello\\n"); exit(); }'
    out = raw(lab, ["bpftrace", "-o", str(target), "-e", prog])
    assert not target.exists(), "bpftrace -o wrote on the machine"
    usr = Path(f"/usr/nfteach-fault-{uuid.uuid4().hex[:6]}")
    try:
        out = raw(lab, ["bpftrace", "-o", str(usr), "-e", prog])
        assert out.status != 0 and not usr.exists()
    finally:
        if usr.exists():
            usr.unlink()


def test_bpftrace_unsafe_and_c_run_nothing_on_the_machine(lab, tmp_path):
    require_confinement(lab)
    marker = tmp_path / "marker"
    for line, argv in [
        (f"bpftrace --unsaf -e 'BEGIN {{ system(\"touch {marker}\"); exit(); }}'",
         ["bpftrace", "--unsafe", "-e", f'BEGIN {{ system("touch {marker}"); exit(); }}']),
        (f"bpftrace -qc 'touch {marker}' -e 'BEGIN {{ exit(); }}'",
         ["bpftrace", "-qc", f"touch {marker}", "-e", "BEGIN { exit(); }"]),
    ]:
        text, out = both(lab, line, argv)
        assert text.startswith("nfteach: bpftrace") and text.count("\n") == 1, text
    assert not marker.exists()


def test_file_written_by_the_lab_is_readable(lab):
    """The control case: the lab's own files are there."""
    lab.write_file("/vagrant/check.bt", 'BEGIN { printf("lab file ok\\n"); exit(); }')
    r = lab.run("bpftrace /vagrant/check.bt")
    assert "lab file ok" in r.output, r.output


# -- sysctls --------------------------------------------------------------------------------
def test_sysctl_outside_net_is_refused_inside_the_sandbox(lab):
    require_confinement(lab, "uts", "mnt")
    for argv in (["sysctl", "-w", "kernel.domainname=nfteach-x"],
                 ["sysctl", "-w", "net/../kernel/domainname=nfteach-x"],
                 ["sysctl", "-w", "net.ipv4.conf.all.forwarding=1", "kernel.domainname=nfteach-x"]):
        out = raw(lab, argv)
        assert out.status != 0, f"{argv} was accepted: {out.text}"
        assert "nfteach-x" not in Path("/proc/sys/kernel/domainname").read_text()


def test_sysctl_load_file_is_refused_inside_the_sandbox(lab):
    require_confinement(lab, "uts", "mnt")
    lab.write_file("/vagrant/evil.conf", "kernel.domainname = nfteach-x\n")
    for line, argv in [("sysctl -qp/vagrant/evil.conf", ["sysctl", "-p", lab.backend.files["/vagrant/evil.conf"]]),
                       ("sysctl --lo /vagrant/evil.conf", ["sysctl", "--load", lab.backend.files["/vagrant/evil.conf"]])]:
        text, out = both(lab, line, argv)
        assert text.startswith("nfteach: sysctl"), text
        assert out.status != 0 and ("Read-only file system" in out.stderr or "denied" in out.stderr), out.text


def test_proc_sys_net_is_the_lab_s(lab):
    """The control case: net.* settings are the lab namespace's and can be written."""
    r = lab.run("sysctl -w net.ipv4.tcp_syn_retries=4")
    assert r.status == 0, r.output
    assert lab.run("sysctl -n net.ipv4.tcp_syn_retries").output.strip() == "4"


# -- modules, capabilities, programs ---------------------------------------------------------
def test_no_module_loading_capability(lab):
    from nfteach.live import sandbox

    status = raw(lab, ["cat", "/proc/self/status"]).stdout
    caps = {ln.split(":")[0]: int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("Cap")}
    assert caps["CapEff"] == caps["CapPrm"] == 0, status  # cat needs none, gets none
    for tool in ("conntrack", "nft", "iptables", "ip", "sysctl", "nc", "bpftrace", "modprobe", "dmesg"):
        assert not set(sandbox.caps_for(tool)) & set(sandbox.NEVER), tool
    status = raw(lab, ["nft", "list", "ruleset"])  # nft runs with CAP_NET_ADMIN only: still works
    assert status.status == 0, status.text


def test_modprobe_install_hook_runs_nothing_on_the_machine(lab, tmp_path):
    require_confinement(lab)
    marker = tmp_path / "modprobe-ran"
    lab.write_file("/vagrant/evil-modprobe.conf", f"install dummy /usr/bin/touch {marker}\n")
    conf = lab.backend.files["/vagrant/evil-modprobe.conf"]
    text, out = both(lab, "modprobe -C /vagrant/evil-modprobe.conf dummy", ["modprobe", "-C", conf, "dummy"])
    assert not marker.exists(), "modprobe's install command ran on the machine"
    assert text.startswith("nfteach: ") and text.count("\n") == 1, text


def test_ip_vrf_exec_does_not_escape(lab, tmp_path):
    require_confinement(lab)
    marker = tmp_path / "vrf-ran"
    text, out = both(lab, f"ip vrf exec default /usr/bin/touch {marker}",
                     ["ip", "vrf", "exec", "default", "/usr/bin/touch", str(marker)])
    assert out.status != 0 and not marker.exists()
    assert text.startswith("nfteach: ip") and text.count("\n") == 1, text


def test_ip_netns_cannot_reach_other_namespaces(lab):
    require_confinement(lab)
    before = machine._out(["ip", "-o", "link"])
    name = f"nfteach-fault-{uuid.uuid4().hex[:6]}"
    try:
        for argv in (["ip", "netns", "exec", "x", "true"], ["ip", "netns", "add", name],
                     ["ip", "link", "set", "eth0", "netns", "1"], ["ip", "-n", "x", "link"]):
            raw(lab, argv)
        assert name not in machine._out(["ip", "netns", "list"])
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert machine._out(["ip", "-o", "link"]) == before
    assert "192.168.122.204" in lab.run("ip -br addr").output, "the lab lost its link"


def test_processes_of_the_machine_are_invisible(lab):
    out = raw(lab, ["cat", "/proc/1/cmdline"])
    assert "bwrap" in out.stdout, out.text  # PID 1 is the sandbox's own init
    assert raw(lab, ["cat", f"/proc/{os.getpid()}/status"]).status != 0


# -- sockets --------------------------------------------------------------------------------
def test_unix_socket_of_the_machine_is_unreachable(lab, tmp_path):
    path = str(tmp_path / "machine.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(5)
    srv.settimeout(0.2)
    reached = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                reached.append(c.recv(100))
                c.close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        for host in (True, False):
            text, out = both(lab, f"nc -N -w 1 -U {path}", ["nc", "-N", "-w", "1", "-U", path], host=host)
            assert out.status != 0, out.text
    finally:
        stop.set()
        t.join(2)
        srv.close()
    assert reached == [], "a lab command connected to a Unix socket of the machine"


# -- signals still reach the tool -----------------------------------------------------------
def test_kill_int_reaches_bpftrace_in_its_sandbox(lab):
    r = lab.run("bpftrace -e 'tracepoint:skb:kfree_skb { @drops = count(); }' &")
    assert r.status == 0, r.output
    lab.run("@host nc -z -w 1 192.168.122.204 23")
    r = lab.run("kill -INT %1")
    assert "@drops:" in r.output, r.output  # bpftrace printed its maps: SIGINT reached it


def test_bpftrace_capabilities_cannot_remount(lab):
    """bpftrace holds CAP_SYS_ADMIN (kernel BTF): the seccomp filter still refuses mounts,
    so even a program it runs (past the --unsafe check) cannot make /usr writable."""
    require_confinement(lab)
    target = Path(f"/usr/nfteach-fault-{uuid.uuid4().hex[:6]}")
    cmd = f"mount -o remount,rw,bind /usr; mount -t tmpfs none /mnt; touch {target}"
    try:
        out = raw(lab, ["bpftrace", "--unsafe", "-e", f'BEGIN {{ system("{cmd}"); exit(); }}'])
        assert not target.exists(), "a program run by bpftrace wrote into /usr"
        assert "Attaching" in out.text or "system" in out.text, out.text
    finally:
        if target.exists():
            target.unlink()


def test_tools_get_only_capabilities_this_process_has(lab):
    from nfteach.live import sandbox

    have = sandbox._own_caps()
    for tool in sandbox.CAPS:
        assert sandbox.mask(sandbox.caps_for(tool)) & ~have == 0, tool
    status = raw(lab, ["cat", "/proc/self/status"]).stdout
    assert "NoNewPrivs:\t1" in status and "Seccomp:\t2" in status, status
