"""Compile the site's wheels to bytecode for the Python that will run them (run inside Pyodide).

A wheel of ``.py`` files makes the browser's Python compile every module it imports, on
every kernel start (Pyodide's MEMFS is new each time, so nothing is cached): IPython,
prompt_toolkit, jedi and pygments are seconds of it. Pyodide's own packages ship
compiled; these do now too. Each ``.py`` becomes a ``.pyc`` next to it (sourceless, as
Pyodide's build does), except in the wheels named in ``KEEP_SOURCE`` (nfteach: the
learner's tracebacks show its lines), which keep the ``.py`` and gain an unchecked-hash
``__pycache__`` entry. Files under the folders ``PRUNE`` names for a wheel are left out
(jedi's stubs of packages the kernel does not have: 1100 of its 1900 files, each one
written into the browser's file system on every start). RECORD is rewritten. Run by
deploy/lite/pycompile.mjs, which passes ``WHEELS`` (paths), ``KEEP_SOURCE`` (names) and
``PRUNE`` ({name: [folder/, ...]}).
"""
import base64
import hashlib
import importlib.util
import io
import sys
import warnings
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc, _code_to_timestamp_pyc


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def compiled(name: str, source: bytes, keep_source: bool):
    """[(path, bytes)] replacing ``name`` (a .py file of a wheel)."""
    code = compile(source, name, "exec", dont_inherit=True, optimize=0)
    if keep_source:
        folder, _, base = name.rpartition("/")
        cached = importlib.util.cache_from_source(base)      # __pycache__/x.cpython-3NN.pyc
        pyc = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
        return [(name, source), (f"{folder}/{cached}" if folder else cached, bytes(pyc))]
    return [(name[:-3] + ".pyc", bytes(_code_to_timestamp_pyc(code, 0, 0)))]


def compile_wheel(path: str, keep_source: bool, prune=()) -> int:
    """Rewrite the wheel at ``path`` compiled; returns how many modules were compiled."""
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()
                   if not i.is_dir() and not i.filename.startswith(tuple(prune))]
    out, n = [], 0
    for name, data in entries:
        if name.endswith(".py") and ".data/" not in name.split("/")[0] + "/":
            try:
                out.extend(compiled(name, data, keep_source))
                n += 1
                continue
            except SyntaxError:  # e.g. a template shipped as .py: keep it as it is
                pass
        out.append((name, data))
    record = next(name for name, _ in out if name.endswith(".dist-info/RECORD"))
    lines = [_record_line(name, data) for name, data in out if name != record] + [f"{record},,"]
    out = [(name, "\n".join(lines).encode() + b"\n" if name == record else data) for name, data in out]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in out:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return n


def main(wheels, keep_source, prune) -> None:
    warnings.simplefilter("ignore", SyntaxWarning)  # the packages' own (invalid escapes in tests)
    for path in wheels:
        name = path.rsplit("/", 1)[-1].split("-")[0].lower().replace("_", "-")
        n = compile_wheel(path, name in keep_source, prune.get(name, ()))
        print(f"  {path.rsplit('/', 1)[-1]}: {n} modules compiled for Python {sys.version.split()[0]}"
              + (" (source kept)" if name in keep_source else ""))


main(list(WHEELS), set(KEEP_SOURCE), {k: list(v) for k, v in PRUNE.items()})  # noqa: F821 - set by pycompile.mjs
