"""The modelled kernel: network namespaces, the netfilter hooks, conntrack, the TCP/IP stack,
modules, and the nf_tables / x_tables state and evaluation. It imports nothing from
:mod:`nfteach.sim.tools` (the command-line programs that talk to it)."""
