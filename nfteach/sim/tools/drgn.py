"""``drgn``: the article's scripts on a synthetic image of the modelled kernel
(:mod:`nfteach.introspect`)."""
from __future__ import annotations

from ...model.backend import Output


def main(kernel, ns, argv) -> Output:
    from ...introspect.drgn_cli import sim_drgn  # drgn itself is optional: imported on use

    return sim_drgn(kernel, ns, argv)
