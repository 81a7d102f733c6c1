"""The benchmarks users evaluate on, graded on the real files in ../shared/data: MBPP (original and sanitized),
MBPP+ (EvalPlus's schema and rules), HumanEval+ (a fixture in EvalPlus's release schema, built from real HumanEval
tasks), CodeContests, the 400 real LiveCodeBench problems, users' own tests; selection, decontamination."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import SHARED, ssd

from simplesd.config import EvalConfig
from simplesd.evaluate import grade
from simplesd.execute import rules
from simplesd.execute.benchmarks import load_benchmark, select_mbpp_split

MBPP = SHARED / "mbpp.jsonl.gz"
SANITIZED = SHARED / "sanitized-mbpp.json.gz"
MBPP_PLUS = SHARED / "MbppPlus-prerelease-767efcc.jsonl.gz"
CODECONTESTS = SHARED / "code_contests_test.json.gz"
LCB_400 = SHARED / "livecodebench_release_v1_public.jsonl.gz"
LCB_PRIVATE = SHARED / "livecodebench_1873_A_with_private_tests.jsonl"
pytestmark = pytest.mark.skipif(not MBPP_PLUS.is_file(), reason="needs ../shared/data beside the checkout (CI has it)")


def fenced(code: str) -> str:
    return "```python\n" + code + "\n```"


def graded(benchmark: str, problems, pairs, **eval_keys):
    rows, grader = grade(problems, pairs, EvalConfig(benchmark=benchmark, **eval_keys), progress=False)
    return rows, grader


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPLESD_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------------------
# MBPP

@pytest.mark.parametrize("path, count", [(MBPP, 974), (SANITIZED, 427)])
def test_every_canonical_mbpp_solution_passes_its_asserts(path, count):
    """A grader that fails a reference solution is wrong: all 974 (and the sanitized 427) pass, including the tasks
    whose function is named `check` (56, 349), whose setup builds the code's classes (367, 927), whose asserts use
    the code's imports (596) or call methods on a returned re.Match (737). The limit is raised from MBPP's 3 s: task
    123 (amicable numbers below 9,999) takes about 1 s alone, and a test must not depend on how loaded CI is."""
    problems = load_benchmark("mbpp", str(path))
    assert len(problems) == count
    rows, _ = graded("mbpp", problems, [(p.task_id, fenced(p.canonical_solution)) for p in problems], timeout=30)
    assert [r.task_id for r in rows if not r.passed] == []
    assert all(r.tests_passed == r.tests_total == len(p.tests) for r, p in zip(rows, problems))


def test_mbpp_wrong_code_fails_at_the_first_failing_assert_and_sees_its_tests_in_the_prompt():
    from simplesd.prompts import user_prompt

    p = next(p for p in load_benchmark("mbpp", str(MBPP)) if p.task_id == "2")
    assert user_prompt(p).startswith("You are an expert Python programmer, and here is your task: Write a function")
    assert p.tests[0] in user_prompt(p) and "Your code should pass these tests:" in user_prompt(p)
    rows, _ = graded("mbpp", [p] * 4, [
        ("2", fenced("def similar_elements(a, b):\n    return (4, 5)")),  # right for the first assert only
        ("2", "no code at all, just words"),  # the whole response runs: a syntax error, as the reference's
        ("2", fenced("def similar_elements(a, b):\n    while True: pass")),
        ("2", fenced("import os\ndef similar_elements(a, b):\n    return os.getcwd()")),  # the reference's guard
    ])
    assert [(r.verdict, r.tests_passed) for r in rows] == [("failed", 1), ("syntax_error", 0), ("timeout", 0),
                                                           ("runtime_error", 0)]
    assert "test 1: AssertionError" in rows[0].detail


def test_mbpp_splits_are_the_papers_task_ranges():
    problems = load_benchmark("mbpp", str(MBPP))
    assert {s: len(select_mbpp_split(problems, s)) for s in ("prompt", "test", "validation", "train")} == \
        {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    assert len(select_mbpp_split(load_benchmark("mbpp", str(SANITIZED)), "test")) == 257


# ---------------------------------------------------------------------------------------------------------
# EvalPlus: MBPP+ and HumanEval+

# tasks with EvalPlus's special handling: inputs made tuples/sets/dicts/complex (2, 115, 124, 252, 722), outputs
# compared as sets (2), anything (164), also zero (295), alternative oracles (558, 581), "not None" (737, 787, 794)
SPECIAL = ["Mbpp/2", "Mbpp/115", "Mbpp/124", "Mbpp/164", "Mbpp/252", "Mbpp/295", "Mbpp/558", "Mbpp/581", "Mbpp/722",
           "Mbpp/737", "Mbpp/787", "Mbpp/794"]
# EvalPlus 0.3.1's own verdicts (benchmarks/evalplus_speed.py) on the original MBPP reference code of these
# tasks: (base passed, base + plus passed)
EVALPLUS_ON_MBPP_CODE = {
    "Mbpp/2": (True, True), "Mbpp/115": (False, False), "Mbpp/124": (True, True), "Mbpp/164": (False, False),
    "Mbpp/252": (True, True), "Mbpp/295": (False, False), "Mbpp/558": (True, False), "Mbpp/581": (True, True),
    "Mbpp/722": (True, True), "Mbpp/737": (False, False), "Mbpp/787": (False, False), "Mbpp/794": (False, False),
}


def _mbpp_plus(ids):
    wanted = set(ids)
    return [p for p in load_benchmark("mbpp+", str(MBPP_PLUS)) if p.task_id in wanted]


def test_mbpp_plus_canonical_solutions_pass_base_and_plus_and_the_expected_outputs_are_cached(tmp_path):
    problems = _mbpp_plus(SPECIAL)
    assert len(problems) == len(SPECIAL)
    assert sum(len(p.tests) for p in problems) == 1362
    pairs = [(p.task_id, fenced(p.prompt + "\n" + p.canonical_solution)) for p in problems]
    rows, grader = graded("mbpp+", problems, pairs)
    assert [(r.task_id, r.verdict, r.base_verdict) for r in rows if not r.passed or r.base_verdict != "passed"] == []
    assert grader["evalplus_expected_outputs"]["computed"] == len(SPECIAL)
    assert len(list((tmp_path / "cache" / "evalplus").glob("*.json"))) == len(SPECIAL)
    # a second load reads the cache: nothing is recomputed, the verdicts are the same
    rows2, grader2 = graded("mbpp+", _mbpp_plus(SPECIAL), pairs)
    assert grader2["evalplus_expected_outputs"]["computed"] == 0
    assert [r.verdict for r in rows2] == [r.verdict for r in rows]


def test_mbpp_plus_verdicts_equal_evalplus_on_real_code():
    """The original MBPP reference code of each special task, graded as EvalPlus 0.3.1 graded it."""
    originals = {str(json.loads(line)["task_id"]): json.loads(line)["code"] for line in gzip.open(MBPP, "rt")}
    problems = _mbpp_plus(SPECIAL)
    pairs = [(p.task_id, fenced(p.prompt + "\n" + originals[p.task_id.split("/")[1]])) for p in problems]
    rows, _ = graded("mbpp+", problems, pairs)
    ours = {r.task_id: (r.base_verdict == "passed", r.passed) for r in rows}
    assert ours == EVALPLUS_ON_MBPP_CODE


def test_evalplus_comparison_rules():
    assert rules.values_equal(0.1 + 0.2, 0.3)  # floats: at least 1e-6 apart is equal
    assert not rules.values_equal(0.1, 0.2)
    assert rules.values_equal([1.0, 2.0], [1.0, 2.0 + 1e-9])
    assert not rules.values_equal((1.0, 2.0), [1.0, 2.0 + 1e-9])  # inexact: the types must match
    assert not rules.values_equal([1.0], [1.0, 2.0])
    assert rules.values_equal(5.0001, 5.0, atol=1e-3) and not rules.values_equal(5.01, 5.0, atol=1e-3)
    assert not rules.values_equal(float("nan"), float("nan"))
    assert rules.values_equal([3, 1], [1, 3], oracle="same_set") and not rules.values_equal([3], [1], oracle="same_set")
    assert rules.values_equal("anything", 1, oracle="anything")
    assert rules.values_equal(0, 7, oracle="or_zero")
    assert rules.values_equal(-0.5, 99.0, atol=1e-6, oracle="poly_root", args=([1, 2],))  # 1 + 2x = 0
    assert not rules.values_equal(0.5, -0.5, atol=1e-6, oracle="poly_root", args=([1, 2],))
    assert rules.read_value("[inf, -inf, set(), frozenset({1}), (1+2j), {'a': (1,)}]") == \
        [float("inf"), float("-inf"), set(), frozenset({1}), 1 + 2j, {"a": (1,)}]
    for bad in ("__import__('os')", "[1] * 3", "x", "f(1)"):
        with pytest.raises(ValueError):
            rules.read_value(bad)


def _humaneval_plus(tmp_path) -> Path:
    """Real HumanEval tasks in EvalPlus's release schema (HumanEval+ itself is not available offline): float
    outputs (2: truncate_number, atol), the root-finding oracle (32: find_zero), lists (0)."""
    tasks = {json.loads(line)["task_id"]: json.loads(line) for line in gzip.open(SHARED / "HumanEval.jsonl.gz", "rt")}
    inputs = {
        "HumanEval/0": ([[[1.0, 2.0, 3.0], 0.5], [[1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3]],
                        [[[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05], [[1.1, 2.2, 3.1, 4.1, 5.1], 1.0]], 0),
        "HumanEval/2": ([[3.5], [1.33]], [[123.456], [0.0001]], 1e-6),
        "HumanEval/32": ([[[1, 2]], [[-6, 11, -6, 1]]], [[[-3, 0, 0, 1]], [[1, 1, 1, 1]]], 1e-4),
    }
    f = tmp_path / "HumanEvalPlus.jsonl"
    with open(f, "w") as out:
        for tid, (base, plus, atol) in inputs.items():
            t = tasks[tid]
            out.write(json.dumps({"task_id": tid, "prompt": t["prompt"], "entry_point": t["entry_point"],
                                  "canonical_solution": t["canonical_solution"], "base_input": base,
                                  "plus_input": plus, "atol": atol, "contract": "", "test": t["test"]}) + "\n")
    return f


def test_humaneval_plus_grades_floats_within_atol_and_any_root(tmp_path):
    problems = load_benchmark("humaneval+", str(_humaneval_plus(tmp_path)))
    by = {p.task_id: p for p in problems}
    pairs = [(p.task_id, p.canonical_solution) for p in problems] + [
        ("HumanEval/2", fenced("def truncate_number(number):\n    return round(number % 1.0, 8)")),  # within atol
        ("HumanEval/2", fenced("def truncate_number(number):\n    return round(number % 1.0, 2)")),  # base only: 123.456
        # other roots than the canonical bisection finds (EvalPlus's oracle accepts any root within atol) on the
        # base inputs, nonsense on the plus ones
        ("HumanEval/32", fenced("def find_zero(xs):\n    return {(1, 2): -0.5, (-6, 11, -6, 1): 3.0}.get(tuple(xs), 0.0)")),
        ("HumanEval/0", fenced("def has_close_elements(numbers, threshold):\n    return len(numbers) > 3")),
    ]
    rows, grader = graded("humaneval+", problems, pairs)
    assert [(r.verdict, r.base_verdict) for r in rows] == [
        ("passed", "passed"), ("passed", "passed"), ("passed", "passed"),
        ("passed", "passed"), ("failed", "passed"), ("failed", "passed"), ("failed", "passed")]
    assert rows[4].tests_passed == 2 and rows[4].tests_total == 4  # failed at the first plus input
    limits = grader["timeout_applies_to"]
    assert "4 x the canonical solution's time" in limits
    assert all(len(by[t].meta["canonical_seconds"]) == len(by[t].tests) for t in by)


def test_evalplus_per_input_limit_follows_the_canonical_time(tmp_path):
    """EvalPlus's limit per input is max(least, 4 x the canonical solution's time): a program 100x slower than the
    canonical one on a plus input times out there, its base verdict stays passed."""
    problems = load_benchmark("humaneval+", str(_humaneval_plus(tmp_path)), )
    p = next(p for p in problems if p.task_id == "HumanEval/2")
    slow = fenced("import time\ndef truncate_number(number):\n    if number > 100: time.sleep(3)\n    return number % 1.0")
    rows, _ = graded("humaneval+", [p], [(p.task_id, slow)], timeout=0.5)
    assert (rows[0].verdict, rows[0].base_verdict, rows[0].tests_passed) == ("timeout", "passed", 2)
    assert "test 2: over 0.5 s" in rows[0].detail


def _hub_mbpp_plus_record(rec: dict) -> dict:
    """A release record in the layout of the hub's evalplus/mbppplus: `code`, `test_list`, and a `test` program
    holding `inputs = [...]`, `results` and `assertion(func(*inp), exp, ATOL)`."""
    inputs = rec["base_input"] + rec["plus_input"]
    test = ("import numpy as np\n\ndef assertion(out, exp, atol):\n    assert out == exp\n\n"
            f"inputs = {inputs!r}\nresults = [0] * {len(inputs)}\n"
            f"for i, (inp, exp) in enumerate(zip(inputs, results)):\n    assertion({rec['entry_point']}(*inp), exp, {rec['atol']})\n")
    return {"task_id": int(rec["task_id"].split("/")[1]), "code": rec["canonical_solution"], "prompt": rec["prompt"],
            "source_file": "x", "test_imports": [], "test_list": [f"assert {rec['entry_point']}(*{a!r}) is not None" for a in rec["base_input"]],
            "test": test}


def test_hub_layouts_load_through_datasets_from_a_local_dataset_folder(tmp_path):
    """The hub datasets' own layouts (evalplus/mbppplus, google-research-datasets/mbpp, deepmind/code_contests),
    built from the real records, read by `datasets` from a local folder as from the hub."""
    releases = {json.loads(line)["task_id"]: json.loads(line) for line in gzip.open(MBPP_PLUS, "rt")}
    folder = tmp_path / "mbppplus"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(_hub_mbpp_plus_record(releases[t])) + "\n" for t in ("Mbpp/2", "Mbpp/124")))
    problems = load_benchmark("mbpp+", str(folder))
    assert [(p.task_id, p.entry_point, p.meta["atol"], p.meta["base_inputs"]) for p in problems] == [
        ("Mbpp/2", "similar_elements", 0.0, 0), ("Mbpp/124", "angle_complex", 0.0001, 0)]
    assert rules.unpack_args(problems[1].tests[0]) == [0.0, 1j]  # EvalPlus's conversion of this task's inputs
    assert len(problems[1].tests) == len(releases["Mbpp/124"]["base_input"]) + len(releases["Mbpp/124"]["plus_input"])
    rows, _ = graded("mbpp+", problems, [(p.task_id, fenced(p.canonical_solution)) for p in problems] +
                     [("Mbpp/2", fenced("def similar_elements(a, b):\n    return ()"))])
    assert [(r.verdict, r.base_verdict) for r in rows] == [("passed", None), ("passed", None), ("failed", None)]

    sanitized = json.loads(gzip.open(SANITIZED, "rt").read())
    folder = tmp_path / "mbpp"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sanitized[:20]))
    problems = load_benchmark("mbpp", str(folder))
    assert len(problems) == 20
    rows, _ = graded("mbpp", problems, [(p.task_id, fenced(p.canonical_solution)) for p in problems])
    assert all(r.passed for r in rows)

    converted = json.loads(gzip.open(CODECONTESTS, "rt").read())[:3]
    folder = tmp_path / "code_contests"
    folder.mkdir()
    hub = [{"name": f"problem {i}", "description": r["problem"],
            "public_tests": {"input": r["tests"]["input"][:1], "output": r["tests"]["output"][:1]},
            "private_tests": {"input": r["tests"]["input"][1:], "output": r["tests"]["output"][1:]},
            "generated_tests": {"input": [], "output": []}} for i, r in enumerate(converted)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hub))
    problems = load_benchmark("codecontests", str(folder))
    assert [p.task_id for p in problems] == ["problem 0", "problem 1", "problem 2"]
    assert [len(p.tests) for p in problems] == [len(r["tests"]["input"]) for r in converted]
    rows, _ = graded("codecontests", problems[:1], [("problem 0", fenced(CC_0))])
    assert rows[0].passed


# ---------------------------------------------------------------------------------------------------------
# CodeContests, LiveCodeBench

CC_0 = """import sys
data = sys.stdin.read().split()
n, m = int(data[0]), int(data[1])
s = data[2:2 + n]
key = lambda t: tuple(ord(c) if i % 2 == 0 else -ord(c) for i, c in enumerate(t))
print(' '.join(str(i + 1) for i in sorted(range(n), key=lambda i: key(s[i]))))
"""


def test_codecontests_test_split_loads_and_grades_stdin_tests():
    problems = load_benchmark("codecontests", str(CODECONTESTS))
    assert (len(problems), sum(len(p.tests) for p in problems)) == (165, 1837)
    assert problems[0].task_id == "codecontests/0" and problems[0].question.startswith("Andi and Budi")
    rows, grader = graded("codecontests", problems[:2], [("codecontests/0", fenced(CC_0)),
                                                         ("codecontests/0", fenced(CC_0.replace("-ord", "ord"))),
                                                         ("codecontests/1", fenced("print(0)"))])
    assert [r.verdict for r in rows] == ["passed", "failed", "failed"]
    assert grader["timeout_s"] == 6.0 and grader["timeout_applies_to"] == "each test"


def test_the_400_real_livecodebench_problems_load_and_every_public_test_is_graded():
    problems = load_benchmark("livecodebench", str(LCB_400))
    assert (len(problems), sum(len(p.tests) for p in problems), sum(bool(p.fn_name) for p in problems)) == (400, 1043, 181)
    # a program that answers nothing, every test run (early_exit off): each problem's every public test is graded
    pairs = [(p.task_id, fenced("class Solution:\n    def __getattr__(self, name):\n        return lambda *a: None\n"
                                if p.fn_name else "print()")) for p in problems]
    rows, _ = graded("livecodebench", problems, pairs, early_exit=False)
    assert sum(r.tests_total for r in rows) == 1043
    assert {r.verdict for r in rows} == {"failed"}
    assert sum(r.tests_passed for r in rows) == 4  # the few tests whose expected answer is an empty line


def test_livecodebench_private_tests_decode():
    (p,) = load_benchmark("livecodebench", str(LCB_PRIVATE))
    assert len(p.tests) == 5 and all(t["testtype"] == "stdin" for t in p.tests)  # 1 public + 4 private
    solution = "t = int(input())\nfor _ in range(t):\n    s = input()\n    print('YES' if sum(a != b for a, b in zip(s, 'abc')) in (0, 2) else 'NO')\n"
    rows, _ = graded("livecodebench", [p], [(p.task_id, fenced(solution))])
    assert rows[0].passed and rows[0].tests_passed == 5


# ---------------------------------------------------------------------------------------------------------
# Users' own tests, selection, decontamination, the command line

CUSTOM = [
    {"task_id": "sum", "question": "Read two integers and print their sum.", "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 -5\n", "output": "0\n"}]},
    {"task_id": "add", "question": "Write add(a, b).", "starter_code": "def add(a, b):", "fn_name": "add",
     "tests": [{"args": [1, 2], "expected": 3}, {"args": [0.1, 0.2], "expected": 0.3}, {"args": [[1], [2]], "expected": [1, 2]}]},
    {"task_id": "sq", "question": "Write sq(x).", "starter_code": "def sq(x):", "entry_point": "sq", "check": "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(-2) == 4\n"},
]


def test_users_own_tests_stdin_calls_and_check_functions(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in CUSTOM))
    sols = tmp_path / "answers.jsonl"
    answers = [("sum", "print(sum(map(int, input().split())))"), ("sum", "print(0)"),
               ("add", "def add(a, b):\n    return a + b"), ("add", "def add(a, b):\n    return a"),
               ("sq", "def sq(x):\n    return x * x"), ("sq", "def sq(x):\n    return abs(x) * 3")]
    sols.write_text("".join(json.dumps({"task_id": t, "completion": fenced(c)}) + "\n" for t, c in answers))
    r = ssd("check", "--benchmark", "custom", "--problems", str(f), "--solutions", str(sols), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert [(x["task_id"], x["verdict"], x["tests_passed"], x["tests_total"]) for x in rows] == [
        ("sum", "passed", 2, 2), ("sum", "failed", 0, 2), ("add", "passed", 3, 3), ("add", "failed", 0, 3),
        ("sq", "passed", 1, 1), ("sq", "failed", 0, 1)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["overall"]["pass@1"]["value"] == 0.5


@pytest.mark.parametrize("record, field", [
    ({"task_id": "a", "question": "q", "tests": []}, "field 'tests' must be a non-empty list"),
    ({"task_id": "a", "question": "q", "tests": [{"input": "1"}]}, "field 'tests[0]' needs 'input' and 'output'"),
    ({"task_id": "a", "question": "q", "fn_name": "f", "tests": [{"args": 1, "expected": 2}]}, "field 'tests[0].args'"),
    ({"task_id": "a", "question": "q", "check": "def check(c): pass"}, "field 'entry_point'"),
    ({"task_id": "a", "question": "q", "fn_name": "f", "atol": -1, "tests": [{"args": [], "expected": 2}]}, "field 'atol'"),
])
def test_bad_custom_records_are_one_line_naming_file_line_and_field(tmp_path, record, field):
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps(CUSTOM[0]) + "\n" + json.dumps(record) + "\n")
    sols = tmp_path / "answers.jsonl"
    sols.write_text(json.dumps({"task_id": "sum", "completion": "x"}) + "\n")
    r = ssd("check", "--benchmark", "custom", "--problems", str(f), "--solutions", str(sols), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{f}:2: {field}" in r.stderr
    assert not (tmp_path / "out").exists()


def test_check_limit_and_ids_grade_a_quick_look(tmp_path):
    problems = load_benchmark("mbpp", str(SANITIZED))
    sols = tmp_path / "answers.jsonl"
    sols.write_text("".join(json.dumps({"task_id": p.task_id, "completion": fenced(p.canonical_solution)}) + "\n"
                            for p in problems))
    out = tmp_path / "a"
    r = ssd("check", "--benchmark", "mbpp", "--problems", str(SANITIZED), "--solutions", str(sols), "--out", str(out), "--limit", "5")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["problems_graded"] == 5 and s["selection"] == {"max_problems": 5} and s["overall"]["pass@1"]["value"] == 1.0
    ids = [problems[10].task_id, problems[20].task_id]
    r = ssd("check", "--benchmark", "mbpp", "--problems", str(SANITIZED), "--solutions", str(sols),
                "--out", str(tmp_path / "b"), "--ids", ",".join(ids))
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["task_id"] for x in (tmp_path / "b" / "verdicts.jsonl").read_text().splitlines()] == ids
    r = ssd("check", "--benchmark", "mbpp", "--problems", str(SANITIZED), "--solutions", str(sols),
                "--out", str(tmp_path / "c"), "--ids", "99999")
    assert r.returncode == 2 and "eval.task_ids" in r.stderr and "99999" in r.stderr


@pytest.mark.parametrize("benchmark, path, pick", [
    ("mbpp", MBPP, lambda p: p.question),
    ("mbpp+", MBPP_PLUS, lambda p: p.prompt),
    ("codecontests", CODECONTESTS, lambda p: p.question),
])
def test_training_prompts_are_decontaminated_against_the_new_benchmarks(tmp_path, benchmark, path, pick):
    from simplesd.config import SSDConfig
    from simplesd.decontaminate import build_index, run_targets
    from simplesd.prompts import Problem

    cfg = SSDConfig()
    cfg.eval.benchmark, cfg.eval.problems = benchmark, str(path)
    targets = run_targets(cfg)  # what `ssd run` checks its prompts against: on by default
    assert [(t.benchmark, t.path) for t in targets] == [(benchmark, str(path))]
    problems = load_benchmark(benchmark, str(path))
    copied = pick(problems[7])
    index = build_index(targets, n=13, common=5)
    prompts = [Problem("copy", "Please solve this. " + copied), Problem("mine", "Write a function that reverses a linked list in place and returns the new head node.")]
    flagged = [(f["prompt_id"], f["benchmark"], f["task_id"]) for f in index.flag(prompts)]
    assert ("copy", benchmark, problems[7].task_id) in flagged  # (CodeContests 23 shares a run of words with 7)
    assert {f[0] for f in flagged} == {"copy"}


@pytest.mark.parametrize("benchmark, path, prompt_has", [
    ("mbpp", SANITIZED, "Your code should pass these tests:"),
    ("mbpp+", MBPP_PLUS, "Complete the Python function"),
    ("codecontests", CODECONTESTS, "writes output to STDOUT"),
])
def test_ssd_evaluate_samples_and_grades_each_benchmark(tmp_path, tiny_model, benchmark, path, prompt_has):
    """`ssd evaluate` end to end with the tiny model: the benchmark's prompts, its grading, --limit."""
    out = tmp_path / "ev"
    r = ssd("evaluate", "--model", tiny_model, "--benchmark", benchmark, "--problems", path, "--n", "2",
            "--temperature", "1.0", "--limit", "3", "--out", out, "--no-progress", "eval.max_new_tokens=8", check=True)
    s = json.loads((out / "T1" / "summary.json").read_text())
    assert s["benchmark"] == benchmark and s["problems_graded"] == 3 and s["selection"]["max_problems"] == 3
    assert sum(s["verdicts"].values()) == 6
    samples = [json.loads(x) for f in sorted((out / "T1" / "samples").glob("*.jsonl")) for x in f.read_text().splitlines()]
    assert len(samples) == 6 and all(prompt_has in x["prompt"] for x in samples)
    if benchmark == "mbpp+":
        assert "base" in s and "base_by_temperature" in json.loads((out / "results.json").read_text())
    if benchmark == "mbpp":
        assert s["selection"]["mbpp_split"] == "test" and {x["prompt_id"] for x in samples} <= {"11", "12", "14", "16", "17", "18", "19", "20"}
    assert "grading only the first 3 problems" in r.stderr


@pytest.mark.slow
def test_all_399_mbpp_plus_canonical_solutions_pass_base_and_plus():
    """Every canonical solution passes its own tests (the expected outputs are its outputs; a grader that failed
    one would be wrong): all 43,318 inputs, Mbpp/255's ~1 GB output (by digest) and Mbpp/599's 20 s included.
    Limits raised (timing is not what this asserts; EvalPlus's own limits are tested above)."""
    problems = load_benchmark("mbpp+", str(MBPP_PLUS))
    assert (len(problems), sum(len(p.tests) for p in problems)) == (399, 43318)
    rows, grader = graded("mbpp+", problems, [(p.task_id, fenced(p.prompt + "\n" + p.canonical_solution)) for p in problems],
                          timeout=60)
    assert [(r.task_id, r.verdict, r.detail) for r in rows if not (r.passed and r.base_verdict == "passed")] == []
    assert grader["evalplus_expected_outputs"]["computed"] == 399
