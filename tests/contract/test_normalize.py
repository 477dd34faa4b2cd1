"""normalize() replaces only what legitimately varies between runs (no root needed)."""
from nfteach.normalize import normalize

CT = (
    "vm$ sudo conntrack -L\n"
    "tcp      6 431999 ESTABLISHED src=192.168.122.1 dst=192.168.122.204 sport=52846 dport=22 "
    "src=192.168.122.204 dst=192.168.122.1 sport=22 dport=52846 [ASSURED] mark=0 use=1\n"
    "tcp      6 118 SYN_SENT src=192.168.122.1 dst=192.168.122.204 sport=51920 dport=2570 [UNREPLIED] "
    "src=192.168.122.204 dst=192.168.122.1 sport=2570 dport=51920 mark=0 use=1\n"
    "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n"
)


def test_conntrack_ports_timeouts_order():
    n = normalize(CT)
    lines = n.splitlines()
    assert lines[1].startswith("tcp      6 TIMEOUT ESTABLISHED") or lines[1].startswith("tcp      6 TIMEOUT SYN_SENT")
    assert "sport=PORT dport=22" in n and "sport=22 dport=PORT" in n and "dport=2570" in n
    assert "52846" not in n and "431999" not in n
    assert "mark=0 use=1" in n
    # hash order does not matter
    a, b, c = CT.splitlines(True)[1:4]
    assert normalize(CT.splitlines(True)[0] + b + a + c) == n


def test_counters_and_handles_are_kept():
    t = "\t\ttcp dport 2570 counter packets 1 bytes 60 drop # handle 2\nChain INPUT (policy ACCEPT 2 packets, 105 bytes)\n"
    assert normalize(t) == t


def test_addresses_pids_timestamps_lab_names():
    t = ("          nc-4711    [001] d..1.  1234.567890: kfree_skb: skbaddr=0xffff8880047c1e00 reason: NETFILTER_DROP\n"
         "2: eth0@if2: <UP> mtu 1500\\    link/ether 26:b2:d6:32:e8:92 brd ff:ff:ff:ff:ff:ff link-netns nfteach-21536-7e7005-host\n"
         "ESTAB 0 0 192.168.122.1:41022 192.168.122.204:22\n")
    n = normalize(t)
    assert "nc-PID    [CPU]" in n and "TIMESTAMP:" in n and "skbaddr=ADDR" in n
    assert "link/ether MAC brd ff:ff:ff:ff:ff:ff" in n and "nfteach-LAB-host" in n
    assert "192.168.122.1:PORT 192.168.122.204:22" in n


def test_kernel_release_keeps_major_minor():
    """Two builds of 6.18 compare equal; 6.18 and 6.1 do not (rule 8)."""
    a = "vm$ sudo modprobe nf_tables\nmodprobe: FATAL: Module nf_tables not found in directory /lib/modules/6.18.44-abc-1\n"
    b = a.replace("6.18.44-abc-1", "6.18.0")
    assert normalize(a) == normalize(b)
    assert "/lib/modules/6.18.RELEASE\n" in normalize(a)
    assert normalize(a) != normalize(a.replace("6.18.44-abc-1", "6.1.0-57-cloud-amd64"))
    assert normalize("vm$ uname -r\n5.10.0-32-cloud-amd64\n") == "vm$ uname -r\n5.10.RELEASE\n"
    m = "vermagic:       6.1.0-57-cloud-amd64 SMP mod_unload modversions \n"
    assert normalize(m) == "vermagic:       6.1.RELEASE SMP mod_unload modversions \n"
    kept = "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n"
    assert normalize(kept) == kept


def test_nft_warning_goes_back_before_its_table():
    """Rule 10: where the vm agent read nft's stderr warning inside its table's listing."""
    warn = "# Warning: table ip filter is managed by iptables-nft, do not touch!\n"
    seen = "table ip t { # handle 1\n}\ntable ip filter { #" + warn + " handle 2\n\tchain INPUT {\n\t}\n}\n"
    assert normalize(seen) == "table ip t { # handle 1\n}\n" + warn + "table ip filter { # handle 2\n\tchain INPUT {\n\t}\n}\n"
    before = warn + "table ip filter {\n}\n"
    assert normalize(before) == before
    # a warning is never moved to another table's listing, nor past its own
    other = "table ip t {\n" + warn + "}\ntable ip filter {\n}\n"
    assert normalize(other) == other


def test_function_graph_cpu_and_durations():
    """Rule 11: the CPU column and durations vary; calls, nesting, and which line has a
    duration are kept."""
    a = " 1) ! 766.513 us  |  nf_confirm [nf_conntrack]();\n 0)               |  ipv4_conntrack_in() {\n"
    b = " 0)   0.180 us    |  nf_confirm [nf_conntrack]();\n 1)               |  ipv4_conntrack_in() {\n"
    assert normalize(a) == normalize(b)
    assert normalize(" 0)   0.180 us    |  nf_confirm();\n") != normalize(" 0)               |  nf_confirm() {\n")
    assert normalize(" 0)   0.180 us    |  nf_confirm();\n") != normalize(" 0)   0.180 us    |  ipv4_confirm();\n")


def test_iptables_nft_legacy_warning_goes_back_to_the_start_of_its_output():
    warn = "# Warning: iptables-legacy tables present, use iptables-legacy to see them"
    late = f"vm$ sudo iptables-nft -S INPUT\n-P INPUT ACCEPT\n{warn}\nvm$ lsmod\nx_tables 1 0\n"
    early = f"vm$ sudo iptables-nft -S INPUT\n{warn}\n-P INPUT ACCEPT\nvm$ lsmod\nx_tables 1 0\n"
    assert normalize(late) == normalize(early) == early
    # only within its own command's output: the next command's lines stay where they are
    other = f"vm$ lsmod\nx_tables 1 0\nvm$ sudo iptables-nft -S\n{warn}\n"
    assert normalize(other) == other
