"""What running a lab command gives back, on every backend."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import List

MACHINES = ("vm", "host")


@dataclass(frozen=True)
class CommandResult:
    """One command as it ran on one lab machine.

    ``output`` is what the real tool printed, stdout and stderr interleaved in order,
    ending with a newline when the tool's output does.
    """

    machine: str
    command: str
    output: str
    status: int = 0

    def __str__(self) -> str:
        return f"{self.machine}$ {self.command}\n{self.output}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Transcript:
    """The results of a script, in order, with the backend that produced them."""

    backend: str
    kernel: str
    results: List[CommandResult] = field(default_factory=list)

    def append(self, result: CommandResult) -> None:
        self.results.append(result)

    def text(self) -> str:
        parts = []
        for r in self.results:
            out = r.output
            if out and not out.endswith("\n"):
                out += "\n"
            parts.append(f"{r.machine}$ {r.command}\n{out}")
        return "".join(parts)

    def to_json(self) -> str:
        return json.dumps([r.to_dict() for r in self.results], indent=1, ensure_ascii=False)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:  # IPython
        p.text(self.text())

    @property
    def ok(self) -> bool:
        return all(r.status == 0 for r in self.results)
