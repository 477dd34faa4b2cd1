"""nfteach: a course on Linux conntrack and Netfilter hooks, runnable on a simulator,
a QEMU guest or your own kernel.

>>> from nfteach import Lab
>>> lab = Lab()                  # backend "sim", kernel profile 5.10
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Lab", "LabError", "__version__"]


def __getattr__(name):  # lazy: `import nfteach` stays cheap
    if name == "Lab":
        from .lab import Lab

        return Lab
    if name == "LabError":
        from .model.errors import LabError

        return LabError
    raise AttributeError(name)
