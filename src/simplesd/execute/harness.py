"""What runs inside the sandboxed program process: it executes the untrusted code and reports, per test, only
what the program produced (captured stdout, or a call's return value as a Python literal). It never sees an
expected output, and it decides no verdict: the worker compares, outside this process. The one exception is
MBPP, whose asserts (the tests its prompt shows) run here in the program's namespace, as MBPP's harness runs
them; the worker still decides from what each assert did.

The execution model follows LiveCodeBench's reference runner so that verdicts match: the same program
preparation (rules.py), the same stdin replacement (`readline`/`readlines`/`read` patched, `open` mocked),
`SystemExit` ending a stdin program normally, one compiled module and one `Solution()` for all tests, and the
same "reliability guard" that sets a list of os/shutil/subprocess functions to None before the code runs (a
program calling them fails there, so it fails here).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import struct
import sys
import time
import types

from . import rules

HEADER = struct.Struct(">I")
# the import block's names, bound once in the grading worker before it forks any program (`preload_imports`): a
# program that starts with the block runs in a module that already holds them, as if it had run the block (its
# star imports touched every public object of 18 modules: ~300 copy-on-write page faults, ~2 ms per program)
_IMPORTED: types.ModuleType | None = None
GUARDED_BUILTINS = ("quit", "exit", "help")  # what reference_guard changes that the block's star imports bind


def preload_imports() -> None:
    global _IMPORTED
    _IMPORTED = types.ModuleType("tmp_sol")
    exec(compile(rules.IMPORTS, "<program>", "exec"), _IMPORTED.__dict__)


def send(fd: int, obj) -> None:
    data = json.dumps(obj).encode()
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv(fd: int):
    head = _read_exact(fd, HEADER.size)
    if head is None:
        return None
    body = _read_exact(fd, HEADER.unpack(head)[0])
    return None if body is None else json.loads(body)


_GUARDED = {
    "os": ["kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
           "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
           "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"],
    "shutil": ["rmtree", "move", "chown"],
    "subprocess": ["Popen"],
}


def reference_guard(exit_too: bool) -> None:
    """The reference runners' `reliability_guard` (not a security measure: the sandbox is; this keeps verdicts
    equal, since a program that calls these fails under the reference)."""
    import shutil
    import subprocess

    os.environ["OMP_NUM_THREADS"] = "1"  # before os.putenv is gone
    mods = {"os": os, "shutil": shutil, "subprocess": subprocess}
    saved = {(mod, name): getattr(mods[mod], name, None) for mod, names in _GUARDED.items() for name in names}
    for mod, name in saved:
        setattr(mods[mod], name, None)
    _import_numpy_unguarded(saved, mods)
    builtins.quit = None
    if exit_too:
        builtins.exit = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _import_numpy_unguarded(saved: dict, mods: dict) -> None:
    """lcb_runner imports numpy before its guard, so a program's `import numpy` works there, although numpy's
    own import calls guarded functions (os.putenv). Forking every program from a process with numpy loaded
    would cost each program ~1 ms; instead the program's first import of numpy runs with the guarded functions
    back, for that import only."""
    real_import = builtins.__import__

    def import_(name, *args, **kwargs):
        if name.partition(".")[0] != "numpy" or "numpy" in sys.modules:
            return real_import(name, *args, **kwargs)
        for (mod, attr), fn in saved.items():
            setattr(mods[mod], attr, fn)
        try:
            return real_import(name, *args, **kwargs)
        finally:
            for mod, attr in saved:
                setattr(mods[mod], attr, None)

    builtins.__import__ = import_


_ATOMS = frozenset({str, int, float, bool, complex, bytes, type(None)})


def plain(value):
    """numpy scalars/arrays to Python values, and dicts, lists and tuples of any subclass (Counter, namedtuple)
    to plain ones, so that their literal can be read back. A list or tuple of plain atoms is returned as it is,
    checked by the types of its elements in one pass: a call per element cost 32 s on Mbpp/255's canonical
    output (1.7 M tuples of 77 strings)."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if (kind is list or kind is tuple) and set(map(type, value)) <= _ATOMS:
        return value
    if hasattr(value, "tolist") and kind.__module__.startswith("numpy"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        out = [plain(v) for v in value]
        return tuple(out) if isinstance(value, tuple) else out
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def literal(value, cap: int, digest_over: int = 0) -> str | None:
    """The value as a literal the worker can read back (rules.read_value), or None if it is not plain data.
    `digest_over` (EvalPlus's values): a literal longer than this is sent as its digest (rules.digest); and the
    worker reads the literal back itself (compared first as text with the canonical one: most are equal)."""
    text = repr(plain(value))
    if digest_over:
        return rules.digest(text) if len(text) > digest_over else text
    if len(text) > cap:
        return None
    try:
        rules.read_value(text)
    except Exception:
        return None
    return text


def _error(exc: BaseException) -> dict:
    status = "memory" if isinstance(exc, MemoryError) else "runtime_error"
    return {"status": status, "error": f"{type(exc).__name__}: {exc}"[:500]}


def _lazy_mock_open(data: str):
    """`unittest.mock.mock_open(read_data=data)`, as the reference patches `builtins.open` with, built only if
    the program calls it (building one costs milliseconds, and few programs ever call it)."""
    mock = None

    def fake_open(*args, **kwargs):
        nonlocal mock
        if mock is None:
            from unittest.mock import mock_open

            mock = mock_open(read_data=data)
        return mock(*args, **kwargs)

    return fake_open


def _run_stdio_test(fn, given, cap: int) -> dict:
    if isinstance(given, list):
        given = "\n".join(given)
    lines = iter(given.split("\n"))
    stdin = io.StringIO(given)
    stdin.readline = lambda *a: next(lines)
    stdin.readlines = lambda *a: given.split("\n")
    stdin.read = lambda *a: given
    out = io.StringIO()
    out.close = lambda x: 1  # as the reference's capture does
    saved = sys.stdin, sys.stdout, builtins.open
    sys.stdin, sys.stdout, builtins.open = stdin, out, _lazy_mock_open(given)
    t0 = time.perf_counter()
    try:
        try:
            fn()
        except SystemExit:
            pass
        result = {"status": "ok"}
    except BaseException as e:  # noqa: BLE001 - every failure of the program is a verdict
        result = _error(e)
    finally:
        sys.stdin, sys.stdout, builtins.open = saved
    result["seconds"] = time.perf_counter() - t0
    text = out.getvalue()
    if len(text) > cap:
        return {"status": "output_limit", "seconds": result["seconds"]}
    if result["status"] == "ok":
        result["output"] = text
    return result


def prepare(kind: str, code: str) -> str:
    """The program as the reference runs it (rules.py): the grading worker prepares it before it hands the job
    to the program (`job["prepared"]`), so the program process does not parse it."""
    if kind == "stdio":
        return rules.prepare_stdio(code)
    if kind == "call":
        return rules.prepare_call_based(code)
    return code


def run(job: dict, out_fd: int, in_fd: int) -> None:
    """Executes job['code'] as the job's kind says and streams one record per test to out_fd."""
    kind, cap = job["kind"], job["output_cap"]
    preloaded = None
    try:
        code = job["code"] if job.get("prepared") else prepare(kind, job["code"])
        if _IMPORTED is not None and code.startswith(rules.IMPORTS):  # the rest, at the same line numbers
            preloaded, source = _IMPORTED, "\n" * rules.IMPORTS.count("\n") + code[len(rules.IMPORTS):]
        else:
            source = code
        compiled = compile(source, "<program>", "exec")
    except SyntaxError as e:
        send(out_fd, {"status": "syntax_error", "error": f"SyntaxError: {e.msg} (line {e.lineno})"})
        return
    except BaseException as e:  # noqa: BLE001
        send(out_fd, _error(e))
        return

    sys.set_int_max_str_digits(rules.INT_DIGITS)
    reference_guard(exit_too=kind in ("humaneval", "assert", "values"))
    try:
        module = preloaded or types.ModuleType("tmp_sol")
        for name in GUARDED_BUILTINS if preloaded else ():  # bound after the guard, as the block binds them
            module.__dict__[name] = getattr(builtins, name)
        exec(compiled, module.__dict__)
        if kind == "stdio":
            target = getattr(module, rules.WRAPPED)
        elif kind == "call":
            owner = module.Solution() if "class Solution" in code else module
            target = getattr(owner, job["fn_name"])
        elif kind == "assert":
            target = module.__dict__
        else:
            target = getattr(module, job["entry_point"])
    except BaseException as e:  # noqa: BLE001
        send(out_fd, _error(e))
        return
    send(out_fd, {"status": "ready"})

    if kind == "stdio":
        for given in job["inputs"]:
            send(out_fd, _run_stdio_test(target, given, cap))
    elif kind == "call":
        for given in job["inputs"]:
            send(out_fd, _call(target, lambda: rules.parse_call_inputs(given), cap))
    elif kind == "values":  # EvalPlus: each input a packed list of arguments (rules.pack_args)
        for given in job["inputs"]:
            send(out_fd, _call(target, lambda: rules.unpack_args(given), cap, job.get("output_rule", ""), rules.DIGEST_OVER))
    elif kind == "assert":  # MBPP: each test an assert run in the program's namespace, as the reference runs it
        while (req := recv(in_fd)) is not None:
            send(out_fd, _assert(target, req["test"]))
    else:  # humaneval: answer the worker's calls of the candidate until it hangs up
        while (req := recv(in_fd)) is not None:
            send(out_fd, _call(target, lambda: rules.read_value(req["args"]), cap))


def _call(target, read_args, cap: int, output_rule: str = "", digest_over: int = 0) -> dict:
    """One call of the program's function; its return value as a literal, or what went wrong. `output_rule`:
    EvalPlus's tasks whose outputs are not data compare only whether the output is None (`not_none`; a bool
    output is kept as it is) or, for the canonical solution, `is_not_none`. `seconds`: the call alone."""
    try:
        args = read_args()
    except BaseException as e:  # noqa: BLE001
        return {**_error(e), "seconds": 0.0}
    t0 = time.perf_counter()
    try:
        out = target(*args)
        seconds = time.perf_counter() - t0
        if output_rule == "not_none":
            out = out if isinstance(out, bool) else out is not None
        elif output_rule == "is_not_none":
            out = out is not None
        text = literal(out, cap, digest_over)
        rec = {"status": "ok", "output": text} if text is not None else {"status": "not_data"}
    except BaseException as e:  # noqa: BLE001 - every failure of the program is a verdict
        rec, seconds = _error(e), time.perf_counter() - t0
    rec["seconds"] = seconds
    return rec


def _assert(scope: dict, test: str) -> dict:
    """One MBPP test (an assert statement) in the program's namespace."""
    t0 = time.perf_counter()
    try:
        exec(compile(test, "<test>", "exec"), scope)
        rec = {"status": "ok"}
    except AssertionError as e:
        rec = {"status": "failed", "error": f"AssertionError: {e}"[:500]}
    except BaseException as e:  # noqa: BLE001
        rec = _error(e)
    rec["seconds"] = time.perf_counter() - t0
    return rec
