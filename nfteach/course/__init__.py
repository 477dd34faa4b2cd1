"""Small helpers the course notebooks share.

Every notebook starts the same way::

    from nfteach import course
    lab = course.open_lab()      # NFTEACH_BACKEND / NFTEACH_KERNEL, default: sim 5.10
    course.banner(lab)           # the first output says which backend produced the results

``NFTEACH_BACKEND`` (``sim``, ``live``, ``vm``) and ``NFTEACH_KERNEL`` (``5.10``, ``6.1``, ``6.12``,
``6.18``) choose the lab for the whole course; ``nfteach tour`` and CI set them.

One module per concern: :mod:`.settings` (which lab, notices), :mod:`.parsers` (reading
what the tools printed), :mod:`.svg` (pictures that fit the column), :mod:`.quiz`
(predict, then observe), :mod:`.kernels` (kernels side by side).

>>> flow_count("conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.")
2
>>> [e.state for e in entries("tcp      6 119 SYN_SENT src=1.1.1.1 dst=2.2.2.2 sport=5 dport=2570 [UNREPLIED] "
...                           "src=2.2.2.2 dst=1.1.1.1 sport=2570 dport=5 mark=0 use=1")]
['SYN_SENT']
"""
from __future__ import annotations

from .kernels import (
           PROFILE_ROWS,
           ProfileTable,
           SideBySide,
           profile,
           profile_table,
           side_by_side,
           what_changed,
)
from .parsers import (
           CallTrees,
           Entry,
           call_trees,
           entries,
           flow_count,
           nf_hooks,
           ran,
           run_order,
           tool_source,
           unavailable,
)
from .quiz import Prediction, Verdict, predict
from .settings import (
           ARTICLE,
           DEFAULT_BACKEND,
           DEFAULT_KERNEL,
           ENV_BACKEND,
           ENV_KERNEL,
           Banner,
           Notice,
           banner,
           fresh_lab,
           kernels,
           needs,
           open_lab,
           program,
           reset,
           settings,
)
from .svg import HookChain, Picture, fit, hook_chain, picture

__all__ = ["ARTICLE", "DEFAULT_BACKEND", "DEFAULT_KERNEL", "ENV_BACKEND", "ENV_KERNEL", "Banner",
           "CallTrees", "Entry", "HookChain", "Notice", "PROFILE_ROWS", "Picture", "Prediction", "ProfileTable",
           "SideBySide", "Verdict", "banner", "call_trees", "entries", "fit", "flow_count", "fresh_lab", "hook_chain",
           "kernels", "needs", "nf_hooks", "open_lab", "picture", "predict", "profile", "profile_table", "program",
           "ran", "reset", "run_order", "settings", "side_by_side", "what_changed", "tool_source", "unavailable"]
