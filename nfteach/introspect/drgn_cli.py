"""The ``drgn`` command on a synthesized program: ``drgn [-q] -e CODE`` and ``drgn SCRIPT [ARGS]``.

Runs like the drgn CLI does (drgn/cli.py): a script gets ``prog`` as a global and runs as
``__main__``; ``-e`` code gets drgn's default globals (and the Linux helpers, as on a
kernel). Output is captured; an exception prints a traceback of the learner's code and
exits 1, as Python does.
"""
from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import select
import signal
import sys
import time
import traceback
from typing import Callable, List, Optional, Tuple

#: seconds a ``drgn`` command may run on a synthesized program before it is stopped
TIME_LIMIT = 60.0
NO_PROMPT = "nfteach: drgn needs -e CODE or a script here (no interactive prompt)"
IGNORED_WITH_ARG = ("-s", "--symbols", "--log-level", "-k", "--main-symbols")
IGNORED = ("--no-default-symbols", "--kernel", "-q", "--quiet")


def parse(argv: List[str]) -> Tuple[Optional[str], List[str], Optional[str]]:
    """(code for -e, script + args, error)."""
    code, rest, i = None, [], 1
    while i < len(argv):
        a = argv[i]
        if a == "-e":
            if i + 1 >= len(argv):
                return None, [], "drgn: error: argument -e: expected one argument"
            code, i = argv[i + 1], i + 2
            rest = argv[i:]
            break
        if a in IGNORED_WITH_ARG:
            i += 2
            continue
        if a in IGNORED:
            i += 1
            continue
        if a.startswith("-") and a != "-":
            return None, [], f"nfteach: drgn: option {a!r} is not modelled by the simulator (supported: -q, -e CODE, SCRIPT [ARGS])"
        rest = argv[i:]
        break
    return code, rest, None


def _globals_for_exec(prog) -> dict:
    from drgn.cli import default_globals

    g = default_globals(prog)
    import drgn.helpers.linux as linux

    for name in linux.__all__:
        g.setdefault(name, getattr(linux, name))
    return g


def _user_traceback(exc: BaseException, filename: str) -> str:
    tb = exc.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if f.filename == filename or not f.filename.startswith("/")
              or "/drgn/" in f.filename]
    frames = [f for f in frames if "nfteach" not in f.filename]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    return text + "".join(traceback.format_exception_only(type(exc), exc))


def run(prog, argv: List[str], read_file: Callable[[str], Optional[str]]) -> Tuple[str, str, int]:
    """(stdout, stderr, status) of ``drgn ARGS`` on ``prog``."""
    import drgn

    code, rest, err = parse(argv)
    if err:
        return "", err + "\n", 2 if err.startswith("nfteach") else 2
    if code is None and not rest:
        return "", NO_PROMPT + "\n", 2
    if code is not None:
        filename, g, args = "<string>", _globals_for_exec(prog), ["-e"] + rest
        source = code
    else:
        filename, args = rest[0], rest
        source = read_file(filename)
        if source is None:
            return "", f"[Errno 2] No such file or directory: '{filename}'\n", 1
        g = {"prog": prog, "__name__": "__main__", "__file__": filename}
    out, errbuf = io.StringIO(), io.StringIO()
    status = 0
    saved_argv = sys.argv
    try:
        old_prog = drgn.get_default_prog()
    except drgn.NoDefaultProgramError:
        old_prog = None
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errbuf):
            sys.argv = list(args)
            drgn.set_default_prog(prog)
            try:
                exec(compile(source, filename, "exec"), g)
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    status = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    status = 1
            except BaseException as e:  # noqa: BLE001 - shown as Python would show it
                errbuf.write(_user_traceback(e, filename))
                status = 1
    finally:
        sys.argv = saved_argv
        drgn.set_default_prog(old_prog)
        linecache.cache.pop(filename, None)
    return out.getvalue(), errbuf.getvalue(), status


TOOLS_DIR = "/vagrant/tools/"


def read_lab_file(kernel, path: str) -> Optional[str]:
    """A file on the simulated vm: what ``Lab.write_file`` put there (``kernel.files``,
    when the sim backend shares its files), else the article's tools at /vagrant/tools."""
    files = getattr(kernel, "files", None) or {}
    if path in files:
        return files[path]
    if path.startswith(TOOLS_DIR) and "/" not in path[len(TOOLS_DIR):]:
        from importlib import resources

        entry = resources.files("nfteach.tools") / path[len(TOOLS_DIR):]
        if entry.is_file():
            return entry.read_text()
    return None


def sim_drgn(kernel, ns, argv):
    """``drgn ...`` as a simulator command: an :class:`~nfteach.model.backend.Output`."""
    from ..model.backend import Output

    try:
        import drgn  # noqa: F401
    except ImportError as e:
        return Output.of(stderr=f"nfteach: drgn cannot be imported here ({e}); pip install drgn\n", status=2)
    from .simprog import LayoutError, sim_program

    try:
        prog = sim_program(kernel)
    except LayoutError as e:
        return Output.of(stderr=f"nfteach: drgn: {e}\n", status=2)
    out, err, status = run_limited(lambda: run(prog, list(argv), lambda p: read_lab_file(kernel, p)))
    return Output.of(stdout=out, stderr=err, status=status)


def run_limited(fn: Callable[[], Tuple[str, str, int]], limit: Optional[float] = None) -> Tuple[str, str, int]:
    """``fn()`` (a drgn run) in a forked child with a time limit: code that loops forever,
    calls ``os._exit`` or crashes the interpreter ends the child, never the lab.
    Without ``fork`` (Pyodide) it runs here, as it always did."""
    limit = TIME_LIMIT if limit is None else limit
    if not hasattr(os, "fork"):  # pragma: no cover - the browser
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, send the result, leave without any cleanup of the parent's
        code = 0
        try:
            os.close(r)
            data = json.dumps(fn()).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline, timed_out = [], time.monotonic() + limit, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, wstatus = os.waitpid(pid, 0)
    if timed_out:
        return "", f"nfteach: drgn did not finish within {limit:g} s and was stopped\n", 124
    try:
        out, err, status = json.loads(b"".join(chunks).decode())
        return out, err, status
    except ValueError:
        code = os.waitstatus_to_exitcode(wstatus) if hasattr(os, "waitstatus_to_exitcode") else 1
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return "", (f"nfteach: drgn: the code ended its own process ({how}) before drgn "
                    "printed its output; the lab is still usable\n"), (128 - code if code < 0 else code or 1)
