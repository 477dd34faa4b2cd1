"""The differential tier: random lab scripts on ``sim`` and on a real kernel, compared.

``generate`` writes the scripts, ``compare`` gives each command a verdict, ``shrink``
reduces a failing script to the lines that matter, ``run`` is ``nfteach fidelity``.
"""
