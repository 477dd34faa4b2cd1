"""NFTEACH_KERNEL chooses the kernel wherever a command line does not."""
from nfteach.backends import chosen_kernel
from nfteach.cli import main


def test_shell_takes_the_kernel_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("NFTEACH_KERNEL", "6.12")
    assert main(["shell", "-c", "uname -r"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("6.12.")
    assert main(["shell", "--kernel", "6.1", "-c", "uname -r"]) == 0  # the command line wins
    assert capsys.readouterr().out.splitlines()[-1].startswith("6.1.0-")


def test_live_has_one_kernel(monkeypatch):
    monkeypatch.setenv("NFTEACH_KERNEL", "6.12")
    assert chosen_kernel("live") is None and chosen_kernel("vm") == "6.12"
    monkeypatch.delenv("NFTEACH_KERNEL")
    assert chosen_kernel("sim") is None
