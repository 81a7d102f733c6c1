"""A re-creation of the reference runners' execution model, for comparison only (tests/test_grader.py; not shipped).

LiveCodeBench's `check_correctness` (used by apple/ml-ssd) starts, per program, a `multiprocessing.Manager`
and a `multiprocessing.Process`; the process applies the reliability guard, compiles the program, runs every
test in-process under `signal.alarm(timeout)` and compares there, stopping at the first failure; the parent
joins with a timeout of (timeout + 1) x tests + 5 s. human-eval's `check_correctness` runs
`prompt + completion + test + check(entry_point)` with `exec` in such a process under a time limit.

This module exists so that tests and `benchmarks/grader_speed.py` can check that the sandboxed grader gives the
same verdicts, and measure how much faster it is. It is **not a sandbox**: use it only on trusted programs
(canonical solutions, their mutants, hand-written fixtures).
"""

from __future__ import annotations

import multiprocessing
import signal
import time

from simplesd.execute import rules
from simplesd.execute.benchmarks import humaneval_program
from simplesd.execute.harness import reference_guard
from simplesd.prompts import Problem


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _lcb_child(problem: Problem, code: str, timeout: int, out) -> None:
    import io
    import json
    import sys
    import types
    from unittest.mock import mock_open, patch

    signal.signal(signal.SIGALRM, _alarm)
    reference_guard(exit_too=False)
    results = []
    try:
        call = bool(problem.fn_name)
        src = rules.prepare_call_based(code) if call else rules.prepare_stdio(code)
        signal.alarm(timeout)
        module = types.ModuleType("tmp_sol")
        exec(src, module.__dict__)
        signal.alarm(0)
        owner = module.Solution() if call and "class Solution" in src else module
        fn = getattr(owner, problem.fn_name if call else rules.WRAPPED)
        for t in problem.tests:
            signal.alarm(timeout)
            try:
                if call:
                    ok = rules.call_equal(fn(*rules.parse_call_inputs(t["input"])), json.loads(t["output"]))
                else:
                    given = t["input"]
                    lines = iter(given.split("\n"))
                    captured = io.StringIO()
                    captured.close = lambda x: 1
                    saved = sys.stdout
                    sys.stdout = captured
                    try:
                        with patch("builtins.open", mock_open(read_data=given)), \
                             patch("sys.stdin", io.StringIO(given)), \
                             patch("sys.stdin.readline", lambda *a: next(lines)), \
                             patch("sys.stdin.readlines", lambda *a: given.split("\n")), \
                             patch("sys.stdin.read", lambda *a: given):
                            try:
                                fn()
                            except SystemExit:
                                pass
                    finally:
                        sys.stdout = saved
                    ok = rules.stdio_equal(captured.getvalue(), t["output"])
                signal.alarm(0)
            except _Timeout:
                results.append(-3)
                break
            except Exception:  # noqa: BLE001
                signal.alarm(0)
                results.append(-4)
                break
            results.append(True if ok else -2)
            if not ok:
                break
    except BaseException:  # noqa: BLE001 - compile errors and the like: "Error during testing"
        signal.alarm(0)
        results = [-4]
    out.extend(results)


def lcb_check(problem: Problem, response: str, timeout: int = 6) -> bool:
    """Passed or not, by LiveCodeBench's execution model (a Manager and a process per program)."""
    code = rules.extract_code(response)
    if code is None:
        return False
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        out = manager.list()
        p = ctx.Process(target=_lcb_child, args=(problem, code, timeout, out))
        p.start()
        p.join(timeout=(timeout + 1) * len(problem.tests) + 5)
        if p.is_alive():
            p.kill()
            p.join()
        results = list(out)
    return len(results) == len(problem.tests) and all(r is True for r in results)


def _humaneval_child(program: str, out) -> None:
    reference_guard(exit_too=True)
    try:
        exec(program, {})
        out.append("passed")
    except BaseException as e:  # noqa: BLE001
        out.append(f"failed: {e}")


def humaneval_check(problem: Problem, completion: str, timeout: float = 3.0) -> bool:
    """Passed or not, by human-eval's execution model."""
    program = humaneval_program(problem, completion) + "\n" + problem.test + "\n" + f"check({problem.entry_point})"
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        out = manager.list()
        p = ctx.Process(target=_humaneval_child, args=(program, out))
        p.start()
        p.join(timeout=timeout + 1)
        if p.is_alive():
            p.kill()
            p.join()
        return list(out) == ["passed"]


def timed(fn, *args):
    t0 = time.perf_counter()
    r = fn(*args)
    return r, time.perf_counter() - t0
