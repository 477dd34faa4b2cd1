"""``nfteach reset --all-mine`` ends only the running live labs of this ``$NFTEACH_CACHE``:
every live lab runs as root, so the uid cannot tell two users' (or two courses') labs apart.
Dry runs on stamps in a private state directory: nothing is ended, nothing needs root."""
from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def creators():
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    yield [p.pid for p in procs]
    for p in procs:
        p.kill()
        p.wait()


def test_all_mine_ends_only_labs_of_this_cache(tmp_path, monkeypatch, creators):
    from nfteach import reset
    from nfteach.live import namespaces as ns

    mine, other = tmp_path / "mine-cache", tmp_path / "other-cache"
    monkeypatch.setattr(ns, "STATE_DIR", tmp_path / "labs")
    monkeypatch.setenv("NFTEACH_CACHE", str(mine))
    for pid, cache, name in ((creators[0], mine, "nfteach-1-aaaaaa"), (creators[1], other, "nfteach-2-bbbbbb")):
        ns.LabStamp(lab_id=name, pid=pid, starttime=ns.proc_starttime(pid), boot=ns.boot_id(),
                    namespaces=[f"{name}-vm", f"{name}-host"], cache=str(cache)).save()
    report = reset.reset(all_mine=True, dry_run=True, runs=tmp_path / "runs", live=True)
    ended = [a.what for a in report.actions]
    assert ended == ["nfteach-1-aaaaaa"], report.lines()
    assert not any("bbbbbb" in line for line in report.lines()), report.lines()
    # without --all-mine, a running lab of this cache is kept (and said so)
    report = reset.reset(all_mine=False, dry_run=True, runs=tmp_path / "runs", live=True)
    assert report.actions == [] and any("aaaaaa" in k for k in report.kept)


def test_help_says_what_all_mine_ends():
    import argparse

    from nfteach import reset

    parser = argparse.ArgumentParser()
    reset.add_subcommands(parser.add_subparsers())
    text = parser._subparsers._group_actions[0].choices["reset"].format_help()
    assert "NFTEACH_CACHE" in " ".join(text.split()) and "live labs" in text
