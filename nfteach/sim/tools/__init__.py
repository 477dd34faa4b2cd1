"""The lab's command-line programs on the simulator (``nft``, ``iptables``, ``conntrack``,
``modprobe``…): they parse argv, ask :mod:`nfteach.sim.kernel`, and print what the real tool
prints. Which program runs for a name: :mod:`nfteach.sim.commands`."""


def help_text(tool: str) -> str:
    """A tool's help page, as the real tool prints it (``help/<tool>.txt``, package data)."""
    from importlib import resources

    return (resources.files(__package__) / "help" / f"{tool}.txt").read_text()
