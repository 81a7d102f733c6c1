"""Benchmark problems and how a model response becomes a grading job.

- LiveCodeBench (code_generation_lite): rows with `question_id`, `question_content`, `starter_code`,
  `difficulty`, `contest_date`, `platform`, `public_test_cases` (a JSON string) and `private_test_cases`
  (base64 of zlib of a pickled JSON string), `metadata` (a JSON string; `func_name` for LeetCode problems).
  Tests are the public ones then the private ones, as LiveCodeBench orders them. The hub loader
  (`livecodebench/code_generation_lite`) is kept for users who can reach it.
- HumanEval: `task_id`, `prompt`, `entry_point`, `canonical_solution`, `test`.
- MBPP (the original set: `task_id`, `text`, `code`, `test_setup_code`, `test_list`; the sanitized subset, one JSON
  list: `task_id`, `prompt`, `code`, `test_imports`, `test_list`; hub `google-research-datasets/mbpp`, `:sanitized`
  for the subset): the asserts of `test_list` are the tests, run as the reference harness runs them, in the
  program's namespace after it loaded: the test imports before the code, the setup code after it.
- HumanEval+ / MBPP+ (EvalPlus's release schema: `task_id`, `prompt`, `entry_point`, `canonical_solution`,
  `base_input`, `plus_input`, `atol`; or the hub's `evalplus/humanevalplus` / `evalplus/mbppplus`, whose `test`
  holds the inputs): each input's expected output is the canonical solution's, computed once in the sandbox and
  cached (`attach_expected`), compared with EvalPlus's rules (rules.values_equal); base and base+plus verdicts.
- CodeContests (`problem` or `description`, `tests: {input: [...], output: [...]}`, or the hub's
  `public_tests`/`private_tests`/`generated_tests`): stdin/stdout tests, compared as LiveCodeBench compares them.
- custom: users' own tests, one JSON object per line (README, Evaluation: Your own tests): `task_id`, `question` (optional
  `starter_code`) and one of `tests: [{"input", "output"}]` (stdin/stdout), `fn_name` + `tests: [{"args", "expected"}]`
  (calls, EvalPlus's comparison, optional `atol`), or `entry_point` + `check` (a `def check(candidate)`).
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import io
import json
import logging
import os
import pickle
import zlib
from pathlib import Path

from ..io import InputError, atomic_write_text, read_jsonl
from ..prompts import Problem, problem_from_record
from .pool import Job
from .rules import EVALPLUS_ORACLES, extract_code, pack_args, read_value

log = logging.getLogger(__name__)

LCB_HUB_ID = "livecodebench/code_generation_lite"
HUB_IDS = {"livecodebench": (LCB_HUB_ID,), "humaneval+": ("evalplus/humanevalplus",),
           "mbpp+": ("evalplus/mbppplus",), "mbpp": ("google-research-datasets/mbpp",),
           "codecontests": ("deepmind/code_contests",)}


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
    p = problem_from_record(rec, BENCHMARKS[benchmark].prompt_format, where, 0)
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
    for key in ("question_id", "public_test_cases"):  # a file of public tests only has no private_test_cases
        if key not in rec:
            raise InputError(f"{where}: missing field '{key}'")
    try:
        public = json.loads(rec["public_test_cases"]) if isinstance(rec["public_test_cases"], str) else rec["public_test_cases"]
    except ValueError:
        raise InputError(f"{where}: field 'public_test_cases' is not JSON") from None
    try:
        private = rec.get("private_test_cases")
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


def _mbpp_problem(rec: dict, where: str, tests: bool = True) -> Problem:
    if not isinstance(rec.get("task_id"), (int, str)) or isinstance(rec.get("task_id"), bool):
        raise InputError(f"{where}: missing field 'task_id'")
    p = _statement(rec, where, "mbpp")
    p.id = str(rec["task_id"])
    for key in ("test_imports", "test_list"):
        if key in rec and not (isinstance(rec[key], list) and all(isinstance(t, str) for t in rec[key])):
            raise InputError(f"{where}: field '{key}' must be a list of strings")
    if not isinstance(rec.get("test_setup_code") or "", str):
        raise InputError(f"{where}: field 'test_setup_code' must be a string")
    # the imports go before the code; the setup after it (it builds objects of the code's classes: MBPP 367, 927)
    return dataclasses.replace(p, tests=list(rec["test_list"]), canonical_solution=rec.get("code") or "",
                               meta={**p.meta, "test_imports": "\n".join(rec.get("test_imports") or []),
                                     "test_setup": (rec.get("test_setup_code") or "").strip()})


# EvalPlus stores some MBPP+ inputs as JSON and turns them into tuples, sets or complex numbers when it loads them
# (evalplus/data/mbpp.py, `mbpp_deserialize_inputs`): the same conversions, by task number
def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


_MBPP_PLUS_INPUTS = {
    **dict.fromkeys((2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
                     740, 744, 809), lambda a: [tuple(x) for x in a]),
    **dict.fromkeys((63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
                    lambda a: [[tuple(x) for x in arg] for arg in a]),
    **dict.fromkeys((75, 413, 444, 753), lambda a: [[tuple(x) for x in a[0]], a[1]]),
    **dict.fromkeys((106, 750), lambda a: [a[0], tuple(a[1])]),
    115: lambda a: [[set(x) if isinstance(x, list) and x else {} for x in a[0]]],
    124: lambda a: (float(a[0]), complex(a[1])),
    **dict.fromkeys((250, 405, 446, 617, 720, 763, 808), lambda a: [tuple(a[0]), a[1]]),
    **dict.fromkeys((259, 401, 445), lambda a: [tuple(tuple(x) for x in arg) for arg in a]),
    278: lambda a: [tuple(tuple(x) if isinstance(x, list) else x for x in a[0])],
    307: lambda a: [tuple(a[0]), a[1], a[2]],
    722: lambda a: [{k: tuple(v) for k, v in a[0].items()}, *a[1:]],
    252: lambda a: [complex(a[0])],
    **dict.fromkeys((580, 615, 791), _tuples),
}


def _hub_test_inputs(test: str, where: str) -> tuple[list, float]:
    """The inputs and atol of a hub EvalPlus record's `test` program (`inputs = [...]` and
    `assertion(candidate(*inp), exp, ATOL)`), read as literals, never run."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        raise InputError(f"{where}: field 'test' is not Python") from None
    inputs, atol = None, 0.0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "inputs" for t in node.targets):
            try:
                inputs = read_value(ast.unparse(node.value))
            except (ValueError, SyntaxError, RecursionError):
                raise InputError(f"{where}: field 'test': its inputs are not literals") from None
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "assertion"
              and len(node.args) == 3 and isinstance(node.args[2], ast.Constant)):
            atol = float(node.args[2].value)
    if not isinstance(inputs, list):
        raise InputError(f"{where}: field 'test' has no `inputs = [...]` list")
    return inputs, atol


def _evalplus_problem(benchmark: str):
    def make(rec: dict, where: str, tests: bool = True) -> Problem:
        hub = "base_input" not in rec  # the hub's records carry their inputs inside `test`
        if hub and benchmark == "mbpp+" and isinstance(rec.get("code"), str):
            code = rec["code"]  # the hub's MBPP+: `code` is the canonical solution; the entry point is what the test calls
            rec = {**rec, "task_id": f"Mbpp/{rec['task_id']}", "canonical_solution": code,
                   "entry_point": rec.get("entry_point") or _called_name(rec.get("test_list") or [], code)}
        for key in ("task_id", "prompt", "entry_point", "canonical_solution"):
            if not isinstance(rec.get(key), str) or (key in ("task_id", "entry_point") and not rec[key]):
                raise InputError(f"{where}: missing, empty or non-string field '{key}'")
        p = _statement(rec, where, benchmark)
        if not tests:
            return p
        if hub:
            if not isinstance(rec.get("test"), str):
                raise InputError(f"{where}: needs 'base_input'/'plus_input' (EvalPlus's release files) or 'test' (its hub datasets)")
            plus, atol = _hub_test_inputs(rec["test"], where)
            base = []
        else:
            base, plus, atol = rec["base_input"], rec.get("plus_input") or [], rec.get("atol") or 0.0
            for name, value in (("base_input", base), ("plus_input", plus)):
                if not isinstance(value, list) or not all(isinstance(a, list) for a in value):
                    raise InputError(f"{where}: field '{name}' must be a list of argument lists")
        if benchmark == "mbpp+":
            convert = _MBPP_PLUS_INPUTS.get(int(rec["task_id"].rsplit("/", 1)[-1]) if rec["task_id"].rsplit("/", 1)[-1].isdigit() else -1)
            if convert:
                try:
                    base, plus = [convert(a) for a in base], [convert(a) for a in plus]
                except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
                    raise InputError(f"{where}: field 'plus_input': not in the shape EvalPlus gives task "
                                     f"{rec['task_id']}'s inputs ({type(e).__name__}: {e})") from None
        if not base and not plus:
            raise InputError(f"{where}: problem {rec['task_id']} has no inputs")
        if not isinstance(atol, (int, float)) or isinstance(atol, bool) or atol < 0:
            raise InputError(f"{where}: field 'atol' must be a number >= 0")
        inputs = [pack_args(a) for a in base + plus]
        return dataclasses.replace(p, entry_point=rec["entry_point"], canonical_solution=rec["canonical_solution"],
                                   tests=inputs, meta={**p.meta, "base_inputs": len(base), "atol": float(atol),
                                                       "oracle": EVALPLUS_ORACLES.get((benchmark, rec["entry_point"]), "")})
    return make


def _called_name(asserts: list[str], code: str) -> str:
    """The function MBPP's asserts call that the code defines (the hub's MBPP+ records do not name it)."""
    called = []
    for a in asserts:
        try:
            called += [n.func.id for n in ast.walk(ast.parse(a.strip()))
                       if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        except SyntaxError:
            continue
    try:
        defined = {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    except SyntaxError:
        defined = set()
    return next((c for c in called if c in defined), "")


def _codecontests_problem(rec: dict, where: str, tests: bool = True) -> Problem:
    p = _statement(rec, where, "codecontests")
    if isinstance(rec.get("tests"), dict):
        groups = [rec["tests"]]
    else:
        groups = [rec[k] for k in ("public_tests", "private_tests", "generated_tests") if isinstance(rec.get(k), dict)]
    cases = []
    for g in groups:
        ins, outs = g.get("input") or [], g.get("output") or []
        if len(ins) != len(outs):
            raise InputError(f"{where}: field 'tests': {len(ins)} inputs for {len(outs)} outputs")
        cases += [{"input": i, "output": o, "testtype": "stdin"} for i, o in zip(ins, outs)]
    if tests and not cases:
        raise InputError(f"{where}: problem {p.id} has no test cases")
    return dataclasses.replace(p, tests=cases)


def _custom_problem(rec: dict, where: str, tests: bool = True) -> Problem:
    """Users' own tests (the module docstring; README, Evaluation: Your own tests)."""
    if not isinstance(rec.get("task_id"), str) or not rec["task_id"]:
        raise InputError(f"{where}: missing or non-string field 'task_id'")
    p = _statement(rec, where, "custom")
    if isinstance(rec.get("check"), str):
        if not isinstance(rec.get("entry_point"), str) or not rec["entry_point"]:
            raise InputError(f"{where}: field 'entry_point': a check function needs the function's name")
        return dataclasses.replace(p, test=rec["check"], entry_point=rec["entry_point"], meta={**p.meta, "check": True})
    cases = rec.get("tests")
    if not isinstance(cases, list) or not cases:
        raise InputError(f"{where}: field 'tests' must be a non-empty list (or give 'check')")
    fn = rec.get("fn_name") or ""
    for i, t in enumerate(cases):
        want = ("args", "expected") if fn else ("input", "output")
        if not isinstance(t, dict) or any(k not in t for k in want):
            raise InputError(f"{where}: field 'tests[{i}]' needs '{want[0]}' and '{want[1]}'")
        if fn and not isinstance(t["args"], list):
            raise InputError(f"{where}: field 'tests[{i}].args' must be a list of arguments")
        if not fn and not (isinstance(t["input"], str) and isinstance(t["output"], str)):
            raise InputError(f"{where}: field 'tests[{i}]': stdin tests have string 'input' and 'output'")
    if not fn:
        return dataclasses.replace(p, tests=[{"input": t["input"], "output": t["output"], "testtype": "stdin"} for t in cases])
    atol = rec.get("atol", 0.0)
    if not isinstance(atol, (int, float)) or isinstance(atol, bool) or atol < 0:
        raise InputError(f"{where}: field 'atol' must be a number >= 0")
    return dataclasses.replace(p, entry_point=fn, tests=[pack_args(t["args"]) for t in cases],
                               meta={**p.meta, "expected": [repr(t["expected"]) for t in cases], "atol": float(atol)})


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark: how its records load, which prompt format samples it, its default time limit."""

    name: str
    load: object
    prompt_format: str
    timeout: float  # seconds (default): for each test, the whole program, or the least per input (EvalPlus)
    timeout_applies_to: str


BENCHMARKS = {b.name: b for b in (
    Benchmark("humaneval", _humaneval_problem, "humaneval", 3.0, "the whole program"),
    Benchmark("humaneval+", _evalplus_problem("humaneval+"), "humaneval", 1.0,
              "each input: max(timeout, 4 x the canonical solution's time), as EvalPlus"),
    Benchmark("mbpp", _mbpp_problem, "mbpp", 3.0, "the whole program"),
    Benchmark("mbpp+", _evalplus_problem("mbpp+"), "humaneval", 1.0,
              "each input: max(timeout, 4 x the canonical solution's time), as EvalPlus"),
    Benchmark("livecodebench", _lcb_problem, "livecodebench", 6.0, "each test"),
    Benchmark("codecontests", _codecontests_problem, "codecontests", 6.0, "each test"),
    Benchmark("custom", _custom_problem, "custom", 6.0, "each test (a check function: the whole program)"),
)}
NAMES = tuple(BENCHMARKS)
EVALPLUS = ("humaneval+", "mbpp+")
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def _file_records(p: Path):
    """(where, record) of a JSONL(.gz) file or of a JSON(.gz) file holding one list of records."""
    name = p.name.lower()
    if name.endswith((".json", ".json.gz")):
        from ..io import read_json

        data = read_json(p)
        if not isinstance(data, list):
            raise InputError(f"{p}: expected a JSON list of problems")
        for i, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise InputError(f"{p}:[{i}]: expected a JSON object")
            yield f"{p}:[{i}]", rec
        return
    for lineno, rec in read_jsonl(p):
        yield f"{p}:{lineno}", rec


def _hub_records(benchmark: str, path: str):
    """(where, record) of a benchmark's hub dataset (users with a hub; `name:config` picks a configuration)."""
    import datasets

    name, _, config = path.partition(":")
    p = Path(name)
    kwargs = {}
    if benchmark == "livecodebench":
        # release_v6 is the union of the repository's test.jsonl .. test6.jsonl (read as plain JSON: datasets 4+
        # no longer runs the repository's loading script)
        files = [f"test{s}.jsonl" for s in ("", "2", "3", "4", "5", "6")]
        kwargs["data_files"] = [f for f in files if (p / f).is_file()] if p.is_dir() else files
        config = None
    elif benchmark == "mbpp" and not p.is_dir():
        config = config or "full"  # the hub's configurations: full (974) and sanitized (427)
    try:
        ds = datasets.load_dataset(name, config or None, split="train" if benchmark == "livecodebench" else "test", **kwargs)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot load from the hub ({str(e).splitlines()[0]})") from None
    for i, r in enumerate(ds):
        yield f"{path}:row {i}", dict(r)


def load_benchmark(benchmark: str, path: str, tests: bool = True) -> list[Problem]:
    """Problems from a local JSONL(.gz) or JSON-list file, a local clone of a hub dataset, or its hub id (HUB_IDS;
    `name:config`). `tests=False`: statements and selection fields only."""
    if benchmark not in BENCHMARKS:
        raise InputError(f"unknown benchmark {benchmark!r} ({', '.join(NAMES)})")
    make = BENCHMARKS[benchmark].load
    p = Path(path)
    hub = p.is_dir() or (not p.exists() and path.partition(":")[0] in HUB_IDS.get(benchmark, ()))
    if not hub and not p.is_file():
        raise InputError(f"{path}: benchmark file not found (nor a hub id: {', '.join(HUB_IDS.get(benchmark, ())) or 'this benchmark has none'})")
    records = _hub_records(benchmark, path) if hub else _file_records(p)
    problems, seen = [], set()
    for i, (where, rec) in enumerate(records):
        if benchmark == "codecontests" and not any(rec.get(k) for k in ("name", "task_id", "id")):
            rec = {"task_id": f"codecontests/{i}", **rec}  # the converted test split has no ids: its order is the id
        prob = make(rec, where, tests)
        if prob.task_id in seen:
            raise InputError(f"{where}: duplicate task_id '{prob.task_id}'")
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


def select_mbpp_split(problems: list[Problem], split: str) -> list[Problem]:
    """MBPP's split by task number (Austin et al.: prompt 1-10, test 11-510, validation 511-600, train 601-974);
    `all` keeps every problem."""
    if split == "all":
        return problems
    lo, hi = MBPP_SPLITS[split]
    return [p for p in problems if p.task_id.isdigit() and lo <= int(p.task_id) <= hi]


def humaneval_program(problem: Problem, completion: str, extraction: str = "official") -> str:
    """The program to run, as human-eval runs it: the prompt, then the completion. A chat model's fenced
    answer contributes its code (which may redefine the function; helpers the prompt defines stay available,
    HumanEval/38's decode_cyclic calls encode_cyclic)."""
    code = extract_code(completion, extraction)
    return _after_prompt(problem, completion if code is None else code)


def _after_prompt(problem: Problem, code: str) -> str:
    return problem.prompt + ("" if problem.prompt.endswith("\n") else "\n") + code


def default_timeout(benchmark: str) -> float:
    """The reference runners' limits: 3 s for a whole HumanEval or MBPP program, 6 s per LiveCodeBench (and
    CodeContests) test, EvalPlus's least limit per input (1 s; 4x the canonical solution's time when longer)."""
    return BENCHMARKS[benchmark].timeout


def evalplus_limits(problem: Problem, timeout: float) -> list[float]:
    """EvalPlus's per-input limits: max(least, 4 x the canonical solution's time on that input)."""
    return [max(timeout, 4.0 * t) for t in problem.meta["canonical_seconds"]]


def make_job(problem: Problem, response: str, timeout: float | None = None, early_exit: bool = True,
             extraction: str = "official") -> Job | None:
    """The grading job for one response, or None when there is no code to run (verdict no_code).
    `extraction`: how code is taken from the response (rules.extract_code)."""
    timeout = timeout or default_timeout(problem.benchmark)
    if problem.benchmark in ("humaneval", "humaneval+", "mbpp", "mbpp+") or problem.meta.get("check"):
        if not response.strip():
            return None
        code = extract_code(response, extraction)
        code = response if code is None else code
    if problem.benchmark == "mbpp":
        imports = problem.meta.get("test_imports", "")
        program = (imports + "\n" if imports else "") + code  # then the setup and the asserts, after it loaded
        return Job("assert", program, timeout=timeout, secret={"setup": problem.meta.get("test_setup", ""), "tests": problem.tests})
    if problem.benchmark == "humaneval" or problem.meta.get("check"):
        program = humaneval_program(problem, response, extraction) if problem.benchmark == "humaneval" else code
        # HumanEval's check runs after its prompt (helpers it defines); a custom check stands alone (its starter
        # code may be a bare signature)
        return Job("humaneval", program, timeout=timeout, entry_point=problem.entry_point,
                   secret={"prompt": problem.prompt if problem.benchmark == "humaneval" else "", "test": problem.test,
                           "entry_point": problem.entry_point})
    if problem.benchmark in EVALPLUS:
        limits = evalplus_limits(problem, timeout)
        # EvalPlus runs base and plus inputs apart; here base first, then plus, stopping at the first failure:
        # the base verdict is decided before any plus input runs
        return Job("values", humaneval_program(problem, response, extraction), timeout=min(60.0, sum(limits)) + 1,
                   inputs=problem.tests, timeouts=limits, entry_point=problem.entry_point, early_exit=True,
                   output_rule="not_none" if problem.meta["oracle"] == "not_none" else "",
                   secret={"expected": problem.meta["expected"], "atol": problem.meta["atol"],
                           "oracle": problem.meta["oracle"]})
    code = extract_code(response, extraction)
    if code is None:
        return None
    if problem.benchmark == "custom" and problem.entry_point:  # call tests with EvalPlus's comparison
        return Job("values", code, timeout=timeout, inputs=problem.tests, timeouts=[timeout] * len(problem.tests),
                   entry_point=problem.entry_point, early_exit=early_exit,
                   secret={"expected": problem.meta["expected"], "atol": problem.meta["atol"], "oracle": ""})
    call = bool(problem.fn_name)
    return Job("call" if call else "stdio", code, timeout=timeout, fn_name=problem.fn_name, early_exit=early_exit,
               inputs=[t["input"] for t in problem.tests], secret={"expected": [t["output"] for t in problem.tests]})


def tests_total(problem: Problem) -> int:
    return 1 if problem.benchmark == "humaneval" or problem.meta.get("check") else len(problem.tests)


def base_verdict(problem: Problem, result: dict) -> str | None:
    """EvalPlus's base verdict of a graded job (None for other benchmarks): passed when every base input passed,
    which the base+plus run decides before its first plus input."""
    if problem.benchmark not in EVALPLUS or not problem.meta.get("base_inputs"):
        return None
    verdict = result.get("verdict", "no_code")
    if verdict == "passed" or result.get("first_failure", -1) >= problem.meta["base_inputs"]:
        return "passed"
    return verdict


# ---------------------------------------------------------------------------------------------------------
# EvalPlus's expected outputs: the canonical solution run once per task, in the sandbox, cached

CACHE_VERSION = 1


def cache_dir() -> Path:
    """$SIMPLESD_CACHE, else $XDG_CACHE_HOME/simplesd, else ~/.cache/simplesd."""
    if os.environ.get("SIMPLESD_CACHE"):
        return Path(os.environ["SIMPLESD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "simplesd"


def _task_key(problem: Problem) -> str:
    """The task as published (the record, not its inputs' reprs: a set's order changes between processes)."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, problem.benchmark, problem.meta["oracle"], problem.raw],
                                  sort_keys=True, default=repr).encode())
    return h.hexdigest()


# EvalPlus runs the canonical solutions without a time limit; here a generous one per input, so that a loaded
# machine does not make a canonical solution fail (Mbpp/255's input 88 takes ~18 s with its 1 GB output)
CANONICAL_SECONDS = 300.0


def attach_expected(problems: list[Problem], workers: int | None = None, memory_mb: int = 4096,
                    progress: bool = True) -> dict:
    """Fills meta["expected"] and meta["canonical_seconds"] of EvalPlus problems from the cache, running the
    canonical solutions that are not cached yet (in the sandbox: a canonical solution is code from a file).
    Returns what happened (cached, computed, seconds, cache file)."""
    todo = [p for p in problems if p.benchmark in EVALPLUS and "expected" not in p.meta]
    if not todo:
        return {}
    import time

    t0 = time.time()
    folder = cache_dir() / "evalplus"
    files = {p.task_id: folder / f"{_task_key(p)}.json" for p in todo}
    cached: dict = {}
    for p in todo:
        try:
            cached[p.task_id] = json.loads(files[p.task_id].read_text())
        except (OSError, ValueError):
            pass
    missing = [p for p in todo if p.task_id not in cached]
    if missing:
        from ..progress import bar as progress_bar
        from .pool import GraderPool, Limits

        jobs = [Job("values", _after_prompt(p, p.canonical_solution),
                    timeout=CANONICAL_SECONDS, inputs=p.tests, timeouts=[CANONICAL_SECONDS] * len(p.tests),
                    entry_point=p.entry_point,
                    output_rule="is_not_none" if p.meta["oracle"] == "not_none" else "", secret={"record": True})
                for p in missing]
        # EvalPlus computes them without limits; here twice the programs' memory (Mbpp/255's output is ~1 GB)
        with GraderPool(workers=workers, limits=Limits(memory_mb=2 * memory_mb)) as pool, \
                progress_bar(len(jobs), "evalplus expected outputs", "task", progress) as bar:
            results = pool.grade(jobs, progress=bar.update)
        for p, res in zip(missing, results):
            if res.get("verdict") != "passed":
                raise InputError(f"{p.task_id}: the canonical solution does not run on every input "
                                 f"({res.get('verdict')}: {res.get('detail', '')})")
            cached[p.task_id] = {"expected": res["outputs"], "seconds": res["times"]}
            try:
                atomic_write_text(files[p.task_id], json.dumps(cached[p.task_id]))
            except OSError as e:
                log.warning("evalplus: cannot cache the expected outputs in %s (%s); they are recomputed next time", folder, e)
    for p in todo:
        p.meta["expected"], p.meta["canonical_seconds"] = cached[p.task_id]["expected"], cached[p.task_id]["seconds"]
    return {"tasks": len(todo), "cached": len(todo) - len(missing), "computed": len(missing),
            "cache": str(folder), "seconds": round(time.time() - t0, 3)}
