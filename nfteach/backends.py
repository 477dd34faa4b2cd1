"""Backends by name, imported lazily, with an install hint when an import fails."""
from __future__ import annotations

import importlib
import os
from typing import Dict, Tuple

from .browser import IN_BROWSER, not_here
from .model.errors import BackendUnavailable

#: name -> (module, class, what to install if the import fails)
REGISTRY: Dict[str, Tuple[str, str, str]] = {
    "sim": ("nfteach.sim.backend", "SimBackend", "pip install 'nfteach' (on Python < 3.11 it needs tomli)"),
    "live": ("nfteach.live.backend", "LiveBackend", "pip install 'nfteach[live]' and run as root on Linux"),
    "vm": ("nfteach.vm.backend", "VmBackend", "apt-get install qemu-system-x86, then `nfteach vm fetch`"),
}

DEFAULT_BACKEND = "sim"


def get_backend_class(name: str):
    try:
        module, cls, hint = REGISTRY[name]
    except KeyError:
        raise BackendUnavailable(
            f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}", token=name
        ) from None
    if IN_BROWSER and name != "sim":
        raise BackendUnavailable(not_here(f"the {name!r} backend"))
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"backend {name!r} cannot be imported ({e}); install: {hint}") from None
    return getattr(mod, cls)


def chosen_kernel(backend: str, kernel: str | None = None) -> str | None:
    """The kernel a command line asked for, else ``$NFTEACH_KERNEL`` (not on live: one kernel)."""
    if kernel or backend == "live":
        return kernel
    return os.environ.get("NFTEACH_KERNEL") or None


def make_backend(name: str = DEFAULT_BACKEND, kernel: str | None = None, **options):
    return get_backend_class(name)(kernel=kernel, **options)
