"""``kill -INT %1`` of a bpftrace job on the vm backend waits until bpftrace is idle again
(nfteach/vm/settle.py): the pieces without QEMU, and the notebook 05 case on a real guest."""
import re

import pytest

from nfteach.vm import settle


def _sampler(lines):
    it = iter(lines)
    seen = []

    def read():
        seen.append(1)
        return next(it)
    return read, seen


def test_waits_while_busy_then_two_epoll_samples_in_a_row():
    # reading /proc/kallsyms (read, 0), running, epoll once, busy again, then idle twice
    read, seen = _sampler(["0 0x3 0x7f", "running", "232 0x5 0x0", "running", "232 0x5 0x0", "281 0x5 0x0",
                           "never read"])
    assert settle.until_idle(read, sleep=lambda s: None) is True
    assert len(seen) == 6


def test_a_job_that_ended_is_not_waited_for():
    read, seen = _sampler(["running", None])
    assert settle.until_idle(read, sleep=lambda s: None) is True
    assert len(seen) == 2


def test_a_job_that_never_idles_is_signalled_after_the_limit():
    now = [0.0]

    def sleep(s):
        now[0] += s
    assert settle.until_idle(lambda: "running", limit_s=1.0, pause_s=0.25, clock=lambda: now[0], sleep=sleep) is False
    assert 1.0 <= now[0] < 1.5


def test_only_bpftrace_clean_stops_wait():
    assert settle.waits_for(["bpftrace", "/vagrant/tools/x.bt"], 2)
    assert settle.waits_for(["bpftrace", "-e", "BEGIN {}"], 15)
    assert not settle.waits_for(["bpftrace", "x.bt"], 9)  # SIGKILL: at once
    assert not settle.waits_for(["cat", "/sys/kernel/tracing/trace_pipe"], 2)
    assert not settle.in_epoll("running") and not settle.in_epoll("") and settle.in_epoll("441 0x1")


class _Job:
    """A fake job for press_again: ends after ``ends_after`` signals given again; samples
    its /proc/PID/syscall from ``lines`` (the last one repeats)."""

    def __init__(self, lines, ends_after=None):
        self.lines, self.ends_after, self.resent, self.now = list(lines), ends_after, 0, 0.0

    def ended_within(self, s):
        self.now += s
        return self.ends_after is not None and self.resent >= self.ends_after

    def read(self):
        self.now += 0.05
        return self.lines.pop(0) if len(self.lines) > 1 else self.lines[0]

    def resend(self):
        self.resent += 1

    def sleep(self, s):
        self.now += s

    def press(self):
        return settle.press_again(self.ended_within, self.read, self.resend, clock=lambda: self.now, sleep=self.sleep)


def test_a_job_that_ends_after_the_signal_gets_it_once():
    job = _Job(["232 0x5 0x0"], ends_after=0)
    assert job.press() == 0 and job.resent == 0


def test_a_missed_signal_is_given_again_while_the_job_idles_in_epoll():
    # bpftrace 0.17: SIGINT between two epoll_waits is ignored until another event comes
    job = _Job(["232 0x5 0x0"], ends_after=1)
    assert job.press() == 1 and job.resent == 1


def test_a_job_busy_on_its_way_out_is_not_signalled_again():
    # printing its maps: bpftrace 0.17 has SIGINT back at SIG_DFL there, a second one kills it
    job = _Job(["running"])
    assert job.press() == 0
    job = _Job(["232 0x5 0x0", "232 0x5 0x0", "1 0x1 0x7f"])  # its last drain, then writing
    assert job.press() == 0


def test_a_job_gone_between_two_looks_is_left_alone():
    job = _Job(["232 0x5 0x0", None])
    assert job.press() == 0


def test_a_job_that_never_ends_is_signalled_a_bounded_number_of_times():
    job = _Job(["232 0x5 0x0"])
    assert job.press() == settle.PRESSES == job.resent


COUNTING_BT = """kprobe:ipv4_conntrack_defrag,
kprobe:ipv4_conntrack_in
{
	$skb = (struct sk_buff *)arg1;
	$iph = (struct iphdr *)($skb->head + $skb->network_header);
	$th = (struct tcphdr *)($skb->head + $skb->transport_header);
	if ($iph->protocol == 6 && $th->dest == 2570 && $th->syn == 1) {
		@n[func] = count();
		printf("tcp syn %s\\n", func);
	}
}
"""


@pytest.mark.vm
def test_kill_right_after_the_syn_prints_every_counted_line(vm_lab, kernel):
    """The first ``func`` of a bpftrace run reads the kernel's symbols (about a second under
    TCG on 6.12); a SIGINT during that made bpftrace 0.23 print one SYN line of the three the
    map counted. Killed 0.2 s after the SYN, every counted event must still print its line."""
    vm_lab.write_file("/root/count.bt", COUNTING_BT)
    out = vm_lab.script("""
sudo modprobe nf_conntrack enable_hooks=1
sudo iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP
sudo bpftrace /root/count.bt &
@host nc -w 1 -z 192.168.122.204 2570 &
sleep 0.2
kill -INT %1
wait %2
""").text()
    counted = sum(int(n) for n in re.findall(r"@n\[\w+\]: (\d+)", out))
    assert counted >= 2, out  # the SYN passed the host's LOCAL_OUT and the vm's PRE_ROUTING
    assert len(re.findall(r"^tcp syn ipv4_conntrack_\w+$", out, re.M)) == counted, out
