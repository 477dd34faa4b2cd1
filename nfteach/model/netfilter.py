"""Netfilter's hook names, the one copy every part of nfteach uses: the hooks of
``enum nf_inet_hooks`` (include/uapi/linux/netfilter.h) in order, as the kernel's symbols
and ``list-nf-hooks`` name them, and as ``nft`` spells them.

>>> HOOK_NAMES.index("LOCAL_IN"), NFT_HOOK_WORDS[1]
(1, 'input')
"""
HOOK_NAMES = ("PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING")
NFT_HOOK_WORDS = ("prerouting", "input", "forward", "output", "postrouting")
