"""Objects a notebook shows: text for terminals, HTML for notebooks."""
from __future__ import annotations

import html


class Shown:
    """Text for terminals and plain output, HTML for notebooks."""

    text = ""

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


def show(obj) -> None:
    """Display ``obj`` in a notebook, print it elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - plain Python
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(obj)
    else:
        print(obj)  # noqa: T201 - a notebook helper run outside a notebook


def text_of(t) -> str:
    """The text of a transcript, a command result or a string."""
    if hasattr(t, "text") and callable(t.text):
        return t.text()
    if hasattr(t, "output"):
        return t.output
    return str(t)
