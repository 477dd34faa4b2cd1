"""Predict, then observe: a question, choices and a "lock in" button.

The lab runs the experiment only when the learner locks in a choice, so "Run All" shows
questions, never answers. ``observed`` runs it too (for ``nfteach tour``'s hidden checks);
that never shows anything in the widget.

>>> q = predict("1 + 1?", ["2", "3"], lambda: "2", explain="Arithmetic.")
>>> q.check(None).correct is None and "2" not in q.check(None).text.split("?")[-1]
True
>>> v = q.lock_in("2"); (v.correct, v.text.splitlines()[0])
(True, '✔ You predicted “2” and the lab agrees. Arithmetic.')
"""
from __future__ import annotations

import html
from typing import Callable, Optional, Sequence, Tuple

from .shown import Shown, text_of

GOOD, BAD, NEUTRAL = "#15803d", "#b91c1c", "#6b7280"
#: labels wrap next to their radio circle (JupyterLab's default puts long labels under it)
RADIO_CSS = ("<style>.nfteach-predict .widget-radio-box label{display:flex;flex-direction:row-reverse;"
             "justify-content:flex-end;align-items:flex-start;gap:8px;white-space:normal;height:auto;"
             "line-height:1.4;margin:3px 0;padding-left:0;width:auto;position:static}"
             ".nfteach-predict .widget-radio-box input{flex:none;margin:3px 0 0 0;position:static}"
             ".nfteach-predict .widget-radio{width:auto;max-width:100%}"
             ".nfteach-predict .widget-html-content{white-space:normal}"
             ".nfteach-predict .nfteach-question{font-weight:bold;line-height:1.45;margin:2px 0 4px 0}</style>")


def inline_code(text: str) -> str:
    """HTML of ``text`` with its `backquoted` parts as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


class Verdict(Shown):
    def __init__(self, correct: Optional[bool], text: str, evidence=None):
        self.correct, self.evidence = correct, evidence
        self.text = text + (f"\n\n{text_of(evidence)}" if evidence is not None else "")

    def _repr_html_(self) -> str:
        colour = {True: GOOD, False: BAD, None: NEUTRAL}[self.correct]
        head, _, rest = self.text.partition("\n\n")
        body = (f'<pre style="white-space:pre-wrap;word-break:break-all;font-size:12px">{html.escape(rest)}</pre>'
                if rest else "")
        return (f'<div class="nfteach-verdict-text" style="border-left:4px solid {colour};padding:4px 8px">'
                f"{inline_code(head)}{body}</div>")


class Prediction(Shown):
    """A "predict, then observe" exercise.

    ``answer_fn()`` runs the lab and returns one of ``choices`` (or ``(choice, transcript)``
    to show the evidence). In a notebook it shows as a widget: choices, a "lock in" button,
    then ✔/✘, the explanation and the transcript. ``lock_in(guess)`` does what the button
    does; ``guess`` is a choice's text or its number (1, 2, ...).
    """

    def __init__(self, question: str, choices: Sequence[str], answer_fn: Callable[[], object],
                 explain: str = ""):
        self.question, self.choices, self.answer_fn, self.explain = question, list(choices), answer_fn, explain
        self._observed: Optional[Tuple[str, object]] = None
        self.verdict: Optional[Verdict] = None
        self._widget = None
        self.text = question + "\n" + "\n".join(f"  {i}. {c}" for i, c in enumerate(self.choices, 1))

    # -- the experiment --------------------------------------------------------------
    def observe(self) -> str:
        if self._observed is None:
            got = self.answer_fn()
            answer, evidence = got if isinstance(got, tuple) else (got, None)
            self._observed = (str(answer), evidence)
        return self._observed[0]

    @property
    def evidence(self):
        """What the experiment showed (runs it the first time; shows nothing)."""
        self.observe()
        return self._observed[1]

    @property
    def observed(self) -> str:
        """What the lab answered (runs the experiment the first time; shows nothing)."""
        return self.observe()

    def _match(self, guess) -> Optional[str]:
        if isinstance(guess, int) and not isinstance(guess, bool) and 1 <= guess <= len(self.choices):
            return self.choices[guess - 1]
        g = str(guess).strip().lower()
        for c in self.choices:
            if c.lower() == g:
                return c
        if g.isdigit() and 1 <= int(g) <= len(self.choices):
            return self.choices[int(g) - 1]
        return None

    def check(self, guess=None) -> Verdict:
        """Compare ``guess`` with what the lab does. Without a valid guess nothing runs and
        nothing is given away."""
        if guess is None or (isinstance(guess, str) and not guess.strip()):
            return Verdict(None, "No prediction yet: pick one of the choices, then lock it in.")
        choice = self._match(guess)
        if choice is None:
            return Verdict(None, f"{guess!r} is not one of the choices ({', '.join(self.choices)}).")
        observed = self.observe()
        evidence = self._observed[1]
        tail = f" {self.explain}" if self.explain else ""
        if choice == observed:
            return Verdict(True, f"✔ You predicted “{choice}” and the lab agrees.{tail}", evidence)
        return Verdict(False, f"✘ You predicted “{choice}”; the lab says “{observed}”.{tail}", evidence)

    def lock_in(self, guess) -> Verdict:
        """What the "lock in" button does: run the experiment, show ✔/✘ and the evidence."""
        v = self.check(guess)
        if v.correct is not None:
            self.verdict = v
        if self._widget is not None:
            self._widget.show(v, locked=v.correct is not None)
        return v

    # -- in a notebook ---------------------------------------------------------------
    def widget(self):
        """The ipywidgets front end (made once)."""
        if self._widget is None:
            self._widget = _PredictionWidget(self)
        return self._widget

    def _repr_html_(self) -> str:  # without ipywidgets (a static page): the question only
        items = "".join(f"<li>{inline_code(c)}</li>" for c in self.choices)
        return (f'<div style="border-left:4px solid #7a4ae2;padding:4px 8px"><b>Predict:</b> '
                f"{inline_code(self.question)}<ol>{items}</ol></div>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        try:
            w = self.widget()
        except ImportError:
            display(self._repr_html_(), raw=False)
            return
        display(w)


def _PredictionWidget(q: Prediction):
    import ipywidgets as W

    class PredictionWidget(W.VBox):
        def __init__(self):
            super().__init__()
            self.add_class("nfteach-predict")
            self.question = W.HTML(RADIO_CSS + f'<div class="nfteach-question">Predict: '
                                   f"{inline_code(q.question)}</div>")
            self.choice = W.RadioButtons(options=list(q.choices), value=None, layout=W.Layout(width="auto"))
            self.button = W.Button(description="lock in", button_style="primary", icon="lock",
                                   tooltip="run the experiment and compare")
            self.button.add_class("nfteach-lock-in")
            self.button.on_click(lambda _b: q.lock_in(self.choice.value))
            self.verdict = W.HTML("")
            self.verdict.add_class("nfteach-verdict")
            self.layout = W.Layout(border_left="4px solid #7a4ae2", padding="4px 8px")
            self.children = [self.question, self.choice, self.button, self.verdict]

        def show(self, v: Verdict, locked: bool) -> None:
            self.verdict.value = v._repr_html_()
            if locked:
                self.choice.disabled = True
                self.button.disabled = True
                self.button.description = "locked in"

    return PredictionWidget()


def predict(question: str, choices: Sequence[str], answer_fn: Callable[[], object], explain: str = "") -> Prediction:
    """A "predict, then observe" exercise (see :class:`Prediction`)."""
    return Prediction(question, choices, answer_fn, explain)
