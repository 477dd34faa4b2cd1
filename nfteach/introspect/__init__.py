"""drgn on every backend: walkers of Netfilter hooks and conntrack for any ``drgn.Program``.

- :func:`program` gives the lab's program: on ``sim`` a real :class:`drgn.Program`
  synthesized from the model with the kernel's own struct layouts
  (:mod:`nfteach.introspect.simprog`); on ``vm`` drgn over QMP on the guest; on ``live``
  ``/proc/kcore`` where the kernel offers it.
- :mod:`nfteach.introspect.hooks`: ``nf_hook_entries_for_each``, ``netns_nf_hooks``, ...
- :mod:`nfteach.introspect.conntrack`: ``nf_conntrack_hash_for_each``, ``nf_conn_entry``, ...

>>> from nfteach import Lab
>>> from nfteach.introspect import program
>>> lab = Lab("sim", kernel="5.10").start()
>>> _ = lab.run("sudo modprobe nf_conntrack enable_hooks=1")
>>> prog = program(lab)
>>> pre_routing_hook = prog['init_net'].nf.hooks_ipv4[0]
>>> for i in range(0, pre_routing_hook.num_hook_entries):
...     print(pre_routing_hook.hooks[i].hook)
(nf_hookfn *)ipv4_conntrack_defrag+0x0 = 0xffffffffc0039000
(nf_hookfn *)ipv4_conntrack_in+0x0 = 0xffffffffc0049580
"""
from __future__ import annotations

from ..browser import IN_BROWSER, not_here
from ..model.errors import BackendUnavailable

NO_DRGN = "drgn cannot be imported here ({err}); install it with: pip install drgn"


def _import_drgn():
    try:
        import drgn
    except ImportError as e:
        if IN_BROWSER:  # drgn is a C extension: no build for Pyodide
            raise BackendUnavailable(not_here("drgn")) from None
        raise BackendUnavailable(NO_DRGN.format(err=e)) from None
    return drgn


def program(lab):
    """A :class:`drgn.Program` on the lab's kernel (the ``vm`` machine's).

    Raises :class:`~nfteach.model.errors.BackendUnavailable` (one line) when drgn is
    missing or the backend cannot offer one.
    """
    _import_drgn()
    lab.start()
    return lab.backend.drgn_program()


def kcore_program():
    """drgn on this machine's running kernel through ``/proc/kcore`` (the ``live`` backend)."""
    import os

    drgn = _import_drgn()
    if not os.access("/proc/kcore", os.R_OK):
        raise BackendUnavailable("drgn needs /proc/kcore, which this kernel does not offer; use --backend vm")
    prog = drgn.Program()
    try:
        prog.set_kernel()
        prog.load_default_debug_info()
    except (OSError, ValueError) as e:
        raise BackendUnavailable(f"drgn cannot open this kernel ({' '.join(str(e).split())}); use --backend vm") from None
    except drgn.MissingDebugInfoError:
        pass
    return prog
