"""The lab's command-line programs on the simulator (``nft``, ``iptables``, ``conntrack``,
``modprobe``…): they parse argv, ask :mod:`nfteach.sim.kernel`, and print what the real tool
prints. Which program runs for a name: :mod:`nfteach.sim.commands`."""
