"""What ``objdump`` and ``nm`` tell about a function of a kernel build (for ``nfteach vm derive``)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import List, Tuple

#: a compiler's clone of a function: init_conntrack.constprop.0, .isra.0, .part.0
CLONE = re.compile(r"^(?P<base>[A-Za-z_][A-Za-z0-9_]*)\.(?:constprop|isra|part)\.\d+$")

_CALL = re.compile(r"^\s*(?P<addr>[0-9a-f]+):\s.*\bcall\w*\s+[0-9a-f]+\s+<(?P<target>[^>+]+)(?:\+0x0)?>")
_JMP = re.compile(r"^\s*(?P<addr>[0-9a-f]+):\s.*\b(?:call|jmp)\w*\s+[0-9a-f]+\s+<(?P<target>[^>+]+)(?:\+0x0)?>")
_RELOC = re.compile(r"^\s*(?P<addr>[0-9a-f]+):\s+R_X86_64_(?:PLT32|PC32)\s+(?P<target>[^\s+-]+)")
_INSN = re.compile(r"^\s*(?P<addr>[0-9a-f]+):\t")


def direct_calls(file: Path, addr: int, size: int, jumps: bool = False) -> List[Tuple[int, int, str]]:
    """(instruction address, address after it, callee) of each direct call in the function at
    ``addr``; ``jumps``: tail calls (``jmp`` to another function) too."""
    out = subprocess.run(["objdump", "-dr", "--no-show-raw-insn", f"--start-address={addr:#x}",
                          f"--stop-address={addr + size:#x}", str(file)], capture_output=True, text=True).stdout
    kinds = ("\tcall", "\tjmp") if jumps else ("\tcall",)
    insns: List[int] = []
    calls: List[Tuple[int, str]] = []  # (index into insns of a call, callee)
    last_call = -1
    for line in out.splitlines():
        r = _RELOC.match(line)
        if r:
            if last_call == len(insns) - 1 and last_call >= 0:
                calls = [c for c in calls if c[0] != last_call] + [(last_call, r["target"])]
            continue
        m = _INSN.match(line)
        if not m:
            continue
        insns.append(int(m["addr"], 16))
        last_call = len(insns) - 1 if any(k in line for k in kinds) else -1
        c = (_JMP if jumps else _CALL).match(line)
        if c:
            calls.append((len(insns) - 1, c["target"]))
    return [(insns[i], insns[i + 1] if i + 1 < len(insns) else addr + size, callee) for i, callee in calls]
