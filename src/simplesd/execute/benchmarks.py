"""Benchmark problems and how a model response becomes a grading job.

- LiveCodeBench (code_generation_lite): rows with `question_id`, `question_content`, `starter_code`,
  `difficulty`, `contest_date`, `platform`, `public_test_cases` (a JSON string) and `private_test_cases`
  (base64 of zlib of a pickled JSON string), `metadata` (a JSON string; `func_name` for LeetCode problems).
  Tests are the public ones then the private ones, as LiveCodeBench orders them. The hub loader
  (`livecodebench/code_generation_lite`) is kept for users who can reach it.
- HumanEval: `task_id`, `prompt`, `entry_point`, `canonical_solution`, `test`.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import pickle
import zlib
from pathlib import Path

from ..io import InputError, read_jsonl
from ..prompts import Problem, problem_from_record
from .pool import Job
from .rules import extract_code

LCB_HUB_ID = "livecodebench/code_generation_lite"


class _StringsOnly(pickle.Unpickler):
    """The private tests are a pickled string; refuse anything that would construct other objects."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a test-case pickle")


def decode_private_tests(blob: str) -> list[dict]:
    raw = zlib.decompress(base64.b64decode(blob.encode("utf-8")))
    text = _StringsOnly(io.BytesIO(raw)).load()
    return json.loads(text)


def _statement(rec: dict, where: str, benchmark: str) -> Problem:
    """The problem's statement as every prompt reads it (`prompts.problem_from_record`), as a benchmark problem."""
    p = problem_from_record(rec, benchmark, where, 0)
    p.id = str(rec.get("question_id" if benchmark == "livecodebench" else "task_id", p.id))
    p.benchmark, p.difficulty, p.contest_date, p.raw = benchmark, rec.get("difficulty"), rec.get("contest_date"), rec
    return p


def _lcb_problem(rec: dict, where: str, tests: bool = True) -> Problem:
    """`tests=False` reads the statement and selection fields only (decontamination): the private tests are the
    expensive part to decode."""
    if not tests:
        if not isinstance(rec.get("question_content"), str):
            raise InputError(f"{where}: missing or non-string field 'question_content'")
        return _statement(rec, where, "livecodebench")
    for key in ("question_id", "public_test_cases", "private_test_cases"):
        if key not in rec:
            raise InputError(f"{where}: missing field '{key}'")
    try:
        public = json.loads(rec["public_test_cases"]) if isinstance(rec["public_test_cases"], str) else rec["public_test_cases"]
    except ValueError:
        raise InputError(f"{where}: field 'public_test_cases' is not JSON") from None
    try:
        private = rec["private_test_cases"]
        private = decode_private_tests(private) if isinstance(private, str) and private else (private or [])
    except Exception as e:  # noqa: BLE001 - base64, zlib and pickle raise different types
        raise InputError(f"{where}: field 'private_test_cases' cannot be decoded ({type(e).__name__}: {e})") from None
    meta = rec.get("metadata") or "{}"
    try:
        meta = json.loads(meta) if isinstance(meta, str) else meta
    except ValueError:
        raise InputError(f"{where}: field 'metadata' is not JSON") from None
    tests = list(public) + list(private)
    if not tests:
        raise InputError(f"{where}: problem {rec['question_id']} has no test cases")
    for i, t in enumerate(tests):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise InputError(f"{where}: test case {i} needs 'input' and 'output'")
    return dataclasses.replace(_statement(rec, where, "livecodebench"), tests=tests, fn_name=meta.get("func_name") or "")


def _humaneval_problem(rec: dict, where: str, tests: bool = True) -> Problem:
    for key in ("task_id", "prompt", "entry_point", "test"):
        if not isinstance(rec.get(key), str):
            raise InputError(f"{where}: missing or non-string field '{key}'")
    return dataclasses.replace(_statement(rec, where, "humaneval"), test=rec["test"],
                               canonical_solution=rec.get("canonical_solution", ""))


def load_benchmark(benchmark: str, path: str, tests: bool = True) -> list[Problem]:
    """Problems from a local JSONL(.gz) file, or (LiveCodeBench) from the hub when `path` is the hub id.
    `tests=False`: statements and selection fields only."""
    make = {"livecodebench": _lcb_problem, "humaneval": _humaneval_problem}.get(benchmark)
    if make is None:
        raise InputError(f"unknown benchmark {benchmark!r} (humaneval or livecodebench)")
    p = Path(path)
    if benchmark == "livecodebench" and (p.is_dir() or (path == LCB_HUB_ID and not p.exists())):
        import datasets  # the hub id is what users with a hub run; a local clone of the repository works offline

        # release_v6 is the union of the repository's test.jsonl .. test6.jsonl (read as plain JSON: datasets 4+
        # no longer runs the repository's loading script)
        files = [f"test{s}.jsonl" for s in ("", "2", "3", "4", "5", "6")]
        if p.is_dir():
            files = [f for f in files if (p / f).is_file()]
        try:
            ds = datasets.load_dataset(path, data_files=files, split="train")
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path}: cannot load from the hub ({str(e).splitlines()[0]})") from None
        return [make(dict(r), f"{path}:row {i}", tests) for i, r in enumerate(ds)]
    problems, seen = [], set()
    for lineno, rec in read_jsonl(p):
        prob = make(rec, f"{p}:{lineno}", tests)
        if prob.task_id in seen:
            raise InputError(f"{p}:{lineno}: duplicate task_id '{prob.task_id}'")
        seen.add(prob.task_id)
        problems.append(prob)
    if not problems:
        raise InputError(f"{p}: no problems")
    return problems


def select_window(problems: list[Problem], start: str | None, end: str | None, difficulties: list[str] | None) -> list[Problem]:
    """LiveCodeBench selection by contest month window (inclusive, YYYY-MM) and difficulty."""
    out = []
    for p in problems:
        month = (p.contest_date or "")[:7]
        if start and (not month or month < start):
            continue
        if end and (not month or month > end):
            continue
        if difficulties and (p.difficulty or "") not in difficulties:
            continue
        out.append(p)
    return out


def humaneval_program(problem: Problem, completion: str, extraction: str = "official") -> str:
    """The program to run, as human-eval runs it: the prompt, then the completion. A chat model's fenced
    answer contributes its code (which may redefine the function; helpers the prompt defines stay available,
    HumanEval/38's decode_cyclic calls encode_cyclic)."""
    code = extract_code(completion, extraction)
    code = completion if code is None else code
    return problem.prompt + ("" if problem.prompt.endswith("\n") else "\n") + code


def default_timeout(benchmark: str) -> float:
    """The reference runners' limits: 3 s for a whole HumanEval program, 6 s per LiveCodeBench test."""
    return 3.0 if benchmark == "humaneval" else 6.0


def make_job(problem: Problem, response: str, timeout: float | None = None, early_exit: bool = True,
             extraction: str = "official") -> Job | None:
    """The grading job for one response, or None when there is no code to run (verdict no_code).
    `extraction`: how code is taken from the response (rules.extract_code)."""
    timeout = timeout or default_timeout(problem.benchmark)
    if problem.benchmark == "humaneval":
        if not response.strip():
            return None
        return Job("humaneval", humaneval_program(problem, response, extraction), timeout=timeout,
                   entry_point=problem.entry_point,
                   secret={"prompt": problem.prompt, "test": problem.test, "entry_point": problem.entry_point})
    code = extract_code(response, extraction)
    if code is None:
        return None
    call = bool(problem.fn_name)
    return Job("call" if call else "stdio", code, timeout=timeout, fn_name=problem.fn_name, early_exit=early_exit,
               inputs=[t["input"] for t in problem.tests], secret={"expected": [t["output"] for t in problem.tests]})


def tests_total(problem: Problem) -> int:
    return 1 if problem.benchmark == "humaneval" else len(problem.tests)
