"""Fault and abuse tests: generated command lines, crashes mid-scenario, a full conntrack
table, a corrupted vm cache. Each test skips only with a stated reason (no root, no qemu,
no cached vm kernel)."""


def pytest_terminal_summary(terminalreporter):
    import sys

    mod = sys.modules.get("tests.fault.test_fuzz_lines") or sys.modules.get("fault.test_fuzz_lines")
    if mod is not None and sum(mod.CASES.values()):
        cases = ", ".join(f"{k}: {v}" for k, v in mod.CASES.items())
        terminalreporter.write_line(f"fault: generated cases run: {sum(mod.CASES.values())} ({cases})")
