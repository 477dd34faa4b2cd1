"""The vm backend's Debian mirror comes from the environment or the machine's apt configuration."""
import sys
from pathlib import Path

import pytest

from nfteach.vm import mirror

# example.org/example.net: reserved names (RFC 2606), never a real archive
DEB822 = """Types: deb
# a comment
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(mirror.ENV_MIRROR, raising=False)
    monkeypatch.delenv(mirror.ENV_SECURITY, raising=False)


def _etc(tmp_path: Path, files: dict) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


def test_deb822_sources(tmp_path):
    etc = _etc(tmp_path, {
        "sources.list.d/debian.sources": DEB822,
        # not .list/.sources: ignored, although it comes first and names a Debian suite
        "sources.list.d/aaa.list.disabled-by-farm": "deb http://other.example.net/debian bookworm main\n",
        # not Debian: a third-party repository with its own suite
        "sources.list.d/node.sources": "Types: deb\nURIs: https://node.example.net/deb\nSuites: nodistro\n"
                                       "Components: main\n",
    })
    assert mirror.debian_mirror(etc) == "http://mirror.example.org/debian"
    assert mirror.security_mirror(etc) == "http://mirror.example.org/debian-security"


def test_one_line_list(tmp_path):
    etc = _etc(tmp_path, {
        "sources.list": "# deb http://commented.example.net/debian bookworm main\n"
                        "deb-src http://src.example.net/debian bookworm main\n"
                        "deb [arch=amd64 signed-by=/k.gpg] http://list.example.org/debian/ trixie main contrib\n"
                        "deb http://list.example.org/debian-security trixie-security main\n",
    })
    assert mirror.debian_mirror(etc) == "http://list.example.org/debian"
    assert mirror.security_mirror(etc) == "http://list.example.org/debian-security"


def test_environment_wins(tmp_path, monkeypatch):
    etc = _etc(tmp_path, {"sources.list.d/debian.sources": DEB822})
    monkeypatch.setenv(mirror.ENV_MIRROR, "http://env.example.org/debian/")
    assert mirror.debian_mirror(etc) == "http://env.example.org/debian"
    assert mirror.security_mirror(etc) == "http://mirror.example.org/debian-security"
    monkeypatch.setenv(mirror.ENV_SECURITY, "http://env.example.org/debian-security")
    assert mirror.security_mirror(etc) == "http://env.example.org/debian-security"


def test_none_configured(tmp_path):
    etc = _etc(tmp_path, {
        "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.example.org/debian\n"
                                         "Suites: bookworm\nComponents: main\nEnabled: no\n",
        "sources.list.d/debian.sources.disabled-by-farm": DEB822,
    })
    with pytest.raises(mirror.NoMirror) as e:
        mirror.debian_mirror(etc)
    msg = str(e.value)
    assert "\n" not in msg and mirror.ENV_MIRROR in msg
    assert mirror.security_mirror(etc) is None


@pytest.mark.skipif(sys.platform == "emscripten", reason="the vm backend needs processes (QEMU, debootstrap): Pyodide (emscripten) has none")
def test_vm_fetch_stops_with_one_line(tmp_path, monkeypatch, capsys):
    """`nfteach vm fetch` without any mirror: a one-line nfteach: error, exit status 2."""
    from nfteach.vm import cli

    monkeypatch.setattr(mirror, "APT_ETC", _etc(tmp_path, {}))
    monkeypatch.setenv("NFTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NFTEACH_SHARED_CACHE", raising=False)
    assert cli.main(["vm", "fetch", "--kernel", "6.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nfteach: ") and mirror.ENV_MIRROR in err[0]
