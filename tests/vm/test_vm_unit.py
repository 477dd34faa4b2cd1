"""Fast tests of the vm backend's pieces: no QEMU needed."""
import base64
import json
import socket
import threading

from nfteach.introspect import hooks
from nfteach.vm.console import Console
from nfteach.vm.fetch import NETFILTER_KO


def test_format_hooks_matches_the_article():
    table = {
        "ipv4": {
            "PRE_ROUTING": [(-400, "ipv4_conntrack_defrag"), (-200, "ipv4_conntrack_in")],
            "LOCAL_IN": [(0, "iptable_filter_hook"), (2147483647, "ipv4_confirm"),
                         (2147483647, "nft_do_chain_ipv4")],
        },
        "ipv6": {},
    }
    text = hooks.format_hooks(table)
    lines = text.splitlines()
    assert lines[0] == "🪝 ipv4 PRE_ROUTING"
    assert lines[1] == "       -400 → ipv4_conntrack_defrag"
    assert " 2147483647 → ipv4_confirm, nft_do_chain_ipv4" in lines
    # every hook of both families has a section, empty ones too; never INGRESS
    assert [x for x in lines if x.startswith("🪝")] == [
        f"🪝 {f} {h}" for f in ("ipv4", "ipv6") for h in hooks.HOOKS
    ]
    assert "INGRESS" not in text
    assert text.endswith("\n\n")


def test_netfilter_debug_files_selected():
    assert NETFILTER_KO.search("/kernel/net/netfilter/nf_conntrack.ko")
    assert NETFILTER_KO.search("/kernel/net/ipv4/netfilter/iptable_filter.ko")
    assert NETFILTER_KO.search("/kernel/net/netfilter/nft_counter.ko")
    assert not NETFILTER_KO.search("/kernel/drivers/block/virtio_blk.ko")


def test_console_skips_noise_and_matches_ids(tmp_path):
    path = tmp_path / "s.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def guest():
        conn, _ = srv.accept()
        frame = lambda o: b"@@NFT@@ " + base64.b64encode(json.dumps(o).encode()) + b" @@END@@\r\n"  # noqa: E731
        conn.sendall(b"SeaBIOS noise\r\n" + frame({"op": "ready", "release": "x"}))
        req = json.loads(base64.b64decode(conn.makefile("rb").readline()))
        conn.sendall(b"[  1.0] kernel says hi\r\n" + frame({"id": 999}) + frame({"id": req["id"], "status": 0}))
        conn.close()

    t = threading.Thread(target=guest)
    t.start()
    c = Console(path, tmp_path / "console.log")
    assert c.wait_ready(5)["release"] == "x"
    assert c.request("ping", timeout=5)["status"] == 0
    c.close()
    t.join()
    assert b"kernel says hi" in (tmp_path / "console.log").read_bytes()
