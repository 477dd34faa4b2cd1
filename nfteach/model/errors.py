"""Errors the lab reports to a learner as one line, never a traceback."""
from __future__ import annotations


class LabError(Exception):
    """A problem with what the learner asked for, reported as a single line.

    ``token`` names the word the parser stopped at, when there is one.
    """

    def __init__(self, message: str, token: str | None = None):
        super().__init__(message)
        self.token = token

    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else "error"


class UnsupportedCommand(LabError):
    """The backend does not model or provide this command or option."""


class BackendUnavailable(LabError):
    """A backend (or one of its facilities) cannot run on this machine; says what is missing."""
