"""The order in which a kernfs (sysfs) directory lists its entries: by ``kernfs_name_hash``.

``lsmod`` (kmod) prints a module's holders by reading ``/sys/module/NAME/holders/``; kernfs
keeps a directory's children in an rbtree sorted by name hash (fs/kernfs/dir.c
``kernfs_name_hash``/``kernfs_sd_compare``), and readdir walks it in that order. So the
"Used by" list is in hash order, not in load order (measured on 5.10: ``libcrc32c ...
nf_conntrack,nf_tables`` whichever was loaded first; ``virtio_pci,virtio_blk``).
"""
from __future__ import annotations

from typing import Iterable, List

_M64 = (1 << 64) - 1
GOLDEN_RATIO_64 = 0x61C8864680B583EB
INT_MAX = 0x7FFFFFFF


def name_hash(name: str) -> int:
    """``kernfs_name_hash(name, NULL)``: partial_name_hash per byte, then end_name_hash."""
    h = 0
    for c in name.encode():
        h = ((h + (c << 4) + (c >> 4)) * 11) & _M64  # partial_name_hash
    h = ((h * GOLDEN_RATIO_64) & _M64) >> 32        # end_name_hash = hash_long(h, 32)
    h &= INT_MAX
    if h < 2:
        h += 2
    if h >= INT_MAX:
        h = INT_MAX - 1
    return h


def readdir_order(names: Iterable[str]) -> List[str]:
    """``names`` as readdir of one kernfs directory returns them."""
    return sorted(names, key=lambda n: (name_hash(n), n))
