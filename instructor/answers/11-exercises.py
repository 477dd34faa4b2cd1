"""The answers of notebook 11 (exercises), as checks. Instructors only: not in the attendees' notebooks.

Run it at the end of an executed ``notebooks/11-exercises.ipynb``, in the notebook's own
kernel (it reads ``lab``, ``course``, ``q1`` .. ``q4``)::

    %run -i ../instructor/answers/11-exercises.py

``tests/notebooks/test_answers.py`` does exactly that on ``sim``, so these answers are
proven against the notebook as committed. The why of each answer is in ``11-exercises.md``.
"""

#: exercise -> the choice the lab answers, per backend (None: depends on the machine)
ANSWERS = {
    "q1": {"sim": "no entry", "vm": "no entry", "live": "no entry"},
    "q2": {"sim": "no entry, and the kernel logs table full",
           "vm": "no entry, and the kernel logs table full", "live": None},
    "q3": {"sim": "2826", "vm": "2826", "live": "2826"},
    "q4": {"sim": None, "vm": "2", "live": None},  # sim: the profile's CPU count (5.10: 2)
}


def expected(name, lab, course):
    want = ANSWERS[name][lab.name]
    if name == "q4" and lab.name == "sim":
        want = str(course.profile(lab.kernel).ncpus)
    return want


def check_answers(ns):
    """Assert every exercise's observed answer; returns {exercise: answer} for display."""
    lab, course = ns["lab"], ns["course"]
    got = {}
    for name in ANSWERS:
        q = ns[name]
        want = expected(name, lab, course)
        assert want is None or want in q.choices, f"{name}: the answer {want!r} is not one of its choices"
        if want is not None:
            assert q.observed == want, f"{name}: the lab answered {q.observed!r}, the answer is {want!r}"
        got[name] = q.observed
    if lab.name in ("sim", "vm"):
        # the evidence of exercise 2: the kernel's own message
        assert "table full" in ns["q2"]._observed[1].text(), "q2: no 'table full' in dmesg"
    return got


if "q1" in globals():  # %run -i in the notebook's kernel
    print(check_answers(globals()))  # noqa: T201 - a script for the instructor
