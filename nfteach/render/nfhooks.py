"""``list-nf-hooks`` text: the article's format, without its out-of-bounds INGRESS read.

>>> print(format_nf_hooks({("ipv4", "LOCAL_IN"): [(2147483647, ["ipv4_confirm", "nft_do_chain_ipv4"])]},
...                       hooks=("LOCAL_IN",), families=("ipv4",)), end="")
🪝 ipv4 LOCAL_IN
 2147483647 → ipv4_confirm, nft_do_chain_ipv4
<BLANKLINE>
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

from ..model.netfilter import HOOK_NAMES

HOOKS = HOOK_NAMES
FAMILIES = ("ipv4", "ipv6")


def group_by_priority(entries: Iterable[Tuple[int, str]]) -> List[Tuple[int, List[str]]]:
    """Run-ordered (priority, function) pairs -> [(priority, [functions in run order])]."""
    out: Dict[int, List[str]] = {}
    for prio, fn in entries:
        out.setdefault(prio, []).append(fn)
    return sorted(out.items())


def format_nf_hooks(sections: Dict[Tuple[str, str], List[Tuple[int, List[str]]]],
                    hooks: Sequence[str] = HOOKS, families: Sequence[str] = FAMILIES) -> str:
    lines = []
    for fam in families:
        for hook in hooks:
            lines.append(f"🪝 {fam} {hook}")
            for prio, fns in sections.get((fam, hook), []):
                lines.append(f"{prio:11} → {', '.join(fns)}")
            lines.append("")
    return "\n".join(lines) + "\n"
