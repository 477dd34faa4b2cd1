"""Which Debian archive the vm backend downloads from: the machine's own apt configuration.

No archive host is written in nfteach. The mirror is, in this order:

1. ``$NFTEACH_DEBIAN_MIRROR`` (e.g. ``http://<your mirror>/debian``), and for the security
   archive ``$NFTEACH_DEBIAN_SECURITY_MIRROR``;
2. the first Debian source of this machine's apt configuration: ``/etc/apt/sources.list``,
   ``sources.list.d/*.list`` (one-line format) and ``sources.list.d/*.sources`` (deb822),
   in apt's order. A Debian source is a ``deb`` entry whose suite is a Debian codename or
   alias (``bookworm``, ``trixie-updates``, ``stable``...) with the ``main`` component; the
   security archive is the one whose suite ends in ``-security``.

Without either, ``debian_mirror`` raises ``NoMirror`` whose message says how to set one.
The security archive is optional: without it a kernel comes from the point release.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

ENV_MIRROR = "NFTEACH_DEBIAN_MIRROR"
ENV_SECURITY = "NFTEACH_DEBIAN_SECURITY_MIRROR"
APT_ETC = Path("/etc/apt")

#: Debian codenames and aliases a Debian archive serves (a suite is one of these, optionally
#: followed by ``-updates``, ``-security``, ``-backports``, ``-proposed-updates``)
CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
             "oldoldstable", "oldstable", "stable", "testing", "unstable")
_SUITE = re.compile(r"^({})(-[a-z-]+)?(/updates)?$".format("|".join(CODENAMES)))


class NoMirror(RuntimeError):
    """Neither the environment nor the apt configuration names a Debian archive."""


@dataclass(frozen=True)
class Source:
    uri: str
    suite: str
    components: tuple


def _one_line(text: str) -> Iterator[Source]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [signed-by=... arch=...]
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            yield Source(parts[1], parts[2], tuple(parts[3:]))


def _deb822(text: str) -> Iterator[Source]:
    for para in re.split(r"\n\s*\n", text):
        fields = {}
        key = None
        for line in para.splitlines():
            if line.lstrip().startswith("#"):
                continue
            if line[:1].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield Source(uri, suite, tuple(fields.get("components", "").split()))


def apt_sources(etc: Optional[Path] = None) -> List[Source]:
    """Every ``deb`` entry of the apt configuration under ``etc`` (/etc/apt), in apt's order."""
    etc = etc or APT_ETC
    out: List[Source] = []
    files = [etc / "sources.list"]
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        out.extend(_deb822(text) if f.suffix == ".sources" else _one_line(text))
    return out


def _debian(sources: List[Source], security: bool) -> Optional[str]:
    for s in sources:
        m = _SUITE.match(s.suite)
        if not m or "main" not in s.components or not s.uri.startswith(("http://", "https://", "file:")):
            continue
        is_security = (m.group(2) or "") == "-security" or bool(m.group(3))
        if is_security == security:
            return s.uri.rstrip("/")
    return None


HOW = (f"set {ENV_MIRROR}=http://<mirror>/debian (and {ENV_SECURITY}=http://<mirror>/debian-security) "
       "or add a Debian source to /etc/apt/sources.list")


def debian_mirror(etc: Optional[Path] = None) -> str:
    """The Debian archive URI (no trailing slash); ``NoMirror`` if none is configured."""
    env = os.environ.get(ENV_MIRROR, "").strip()
    if env:
        return env.rstrip("/")
    uri = _debian(apt_sources(etc), security=False)
    if uri is None:
        etc = etc or APT_ETC
        raise NoMirror(f"no Debian mirror found in {etc}/sources.list or {etc}/sources.list.d: {HOW}")
    return uri


def security_mirror(etc: Optional[Path] = None) -> Optional[str]:
    """The Debian security archive URI, or None (then only the point release is used)."""
    env = os.environ.get(ENV_SECURITY, "").strip()
    if env:
        return env.rstrip("/")
    return _debian(apt_sources(etc), security=True)
