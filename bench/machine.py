"""What every benchmark records about the machine it ran on, and its markdown tables."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Dict, List, Sequence


def _first(path: str, prefix: str, value) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return value(line)
    except OSError:
        pass
    return "?"


def machine() -> Dict:
    return {
        "cpus": os.cpu_count(),
        "cpu": _first("/proc/cpuinfo", "model name", lambda ln: ln.split(":", 1)[1].strip()),
        "memory": _first("/proc/meminfo", "MemTotal:", lambda ln: f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"),
        "kernel": platform.release(), "kvm": os.path.exists("/dev/kvm"),
        "python": platform.python_version(), "loadavg_at_start": os.getloadavg(),
    }


def md_table(head: Sequence, rows: List[Sequence]) -> List[str]:
    """A markdown table with columns padded to their widest cell."""
    w = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return (["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(head)) + " |",
             "|" + "|".join("-" * (x + 2) for x in w) + "|"] +
            ["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |" for r in rows])
