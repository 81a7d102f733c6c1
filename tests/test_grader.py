"""The sandboxed grader: LiveCodeBench and HumanEval rules, every verdict, pass@k, agreement with the reference
runners' execution model, and `ssd check`."""

import json

import lcb_fixtures
import pytest
from conftest import HUMANEVAL, grader_pool, read_jsonl, ssd

from simplesd.execute import rules
from simplesd.execute.benchmarks import decode_private_tests, load_benchmark, make_job, select_window
from simplesd.execute.pool import GraderPool, Job
from simplesd.metrics import paired_difference, pass_at_k, summarize


@pytest.fixture(scope="module")
def pool():
    with grader_pool(workers=2) as p:
        yield p


def stdio(code, inputs, expected, timeout=2.0, **kw):
    return Job("stdio", code, timeout=timeout, inputs=inputs, secret={"expected": expected}, **kw)


# --- the comparison and extraction rules, one by one ------------------------------------------------------

def test_code_extraction_is_lcb_runners():
    """lcb_runner's rule: the lines between the last two lines that hold a fence, whatever else they hold."""
    assert rules.extract_code("a\n```python\nx = 1\n```\nthen\n```py\ny = 2\n```") == "y = 2"
    assert rules.extract_code("```\nz = 3\n```") == "z = 3"
    assert rules.extract_code("no code at all") is None
    assert rules.extract_code("```python\nx = 1") is None  # one fence line: no code
    assert rules.extract_code("```python3\nx = 1\n```") == "x = 1"  # extracted officially
    # a stray fence line after the program: the official rule takes the text between it and the closing fence
    stray = "```python\nprint(1)\n```\nRun it with:\n```"
    assert rules.extract_code(stray) == "Run it with:"
    # the lenient rule (opt-in) takes the last well-formed block
    assert rules.extract_code(stray, "lenient") == "print(1)\n"
    assert rules.extract_code("```python3\nx = 1\n```", "lenient") is None
    with pytest.raises(ValueError):
        rules.extract_code("x", "loose")


def test_stdio_rules():
    assert rules.stdio_equal("1 2\n3\n", "1 2\n3")  # whole output stripped
    assert rules.stdio_equal("  1 2  \n 3\n\n", "1 2\n3")  # each line stripped
    assert not rules.stdio_equal("1\n2\n3", "1\n2")  # line counts must match
    assert not rules.stdio_equal("1 2\n\n3", "1 2\n3")  # an inner blank line is a line
    assert rules.stdio_equal("2.50 1e2", "2.5 100")  # else element-wise Decimal
    assert not rules.stdio_equal("0.1 0.2", "0.1 0.20001")  # Decimal is exact: no tolerance
    assert not rules.stdio_equal("1  2", "1 2 3")  # element counts differ
    assert not rules.stdio_equal("yes", "Yes")  # exact, case-sensitive
    assert not rules.stdio_equal("50000000000000000", "50000000000000001")  # no float rounding


def test_call_based_rules():
    assert rules.call_equal((1, 2), [1, 2])  # a returned tuple counts as a list
    assert not rules.call_equal([(1, 2)], [[1, 2]])  # only at the top level
    assert rules.call_equal(1, 1.0) and rules.call_equal(True, 1)  # Python equality of the JSON value
    assert rules.parse_call_inputs('[1, 2]\n"a"\n3') == [[1, 2], "a", 3]


def test_stdio_program_preparation():
    code = "import sys\nx = 1\nif __name__ == '__main__':\n    print(x)"
    prepared = rules.prepare_stdio(code)
    assert prepared.startswith(rules.IMPORT_BLOCK)
    assert "def wrapped_function():" in prepared and "if __name__" not in prepared


def test_private_tests_decode_and_refuse_objects():
    tests = [{"input": "1", "output": "2", "testtype": "stdin"}]
    assert decode_private_tests(lcb_fixtures.encode_private(tests)) == tests
    import base64
    import pickle
    import zlib

    evil = base64.b64encode(zlib.compress(pickle.dumps(print))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_private_tests(evil)


def test_pass_at_k_hand_computed():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - (3 * 2) / (5 * 4))  # 1 - C(3,2)/C(5,2) = 0.7
    assert pass_at_k(4, 1, 3) == pytest.approx(0.75)
    s = summarize({"a": [True, False, False, False], "b": [True, True, False, False]})
    assert list(s) == ["pass@1", "pass@2", "pass@4"]
    assert s["pass@1"]["value"] == pytest.approx((0.25 + 0.5) / 2)
    assert s["pass@2"]["value"] == pytest.approx((0.5 + (1 - 1 / 6)) / 2)
    lo, hi = s["pass@1"]["ci95"]
    assert 0.25 <= lo <= hi <= 0.5
    d = paired_difference({"a": [False], "b": [True]}, {"a": [True], "b": [True]})
    assert d["difference"] == pytest.approx(0.5) and d["problems"] == 2


# --- verdicts -----------------------------------------------------------------------------------------------

def test_every_verdict(pool):
    jobs = [
        stdio("print(int(input()) + 1)", ["1", "5"], ["2", "6"]),
        stdio("print(int(input()) + 2)", ["1", "5"], ["2", "6"]),
        stdio("raise KeyError('x')", ["1"], ["2"]),
        stdio("while True:\n    pass", ["1"], ["2"], timeout=1.0),
        stdio("x = bytearray(10**10)", ["1"], ["2"]),
        stdio("def f(:\n    pass", ["1"], ["2"]),
        Job("call", "class Solution:\n    def add(self, a, b):\n        return a + b", timeout=2,
            inputs=["1\n2", "[1]\n[2]"], fn_name="add", secret={"expected": ["3", "[1, 2]"]}),
    ]
    got = [(r["verdict"], r["tests_passed"], r["tests_total"]) for r in pool.grade(jobs)]
    assert got == [("passed", 2, 2), ("failed", 0, 2), ("runtime_error", 0, 1), ("timeout", 0, 1),
                   ("memory", 0, 1), ("syntax_error", 0, 1), ("passed", 2, 2)]
    probs = load_benchmark("humaneval", str(HUMANEVAL))
    assert make_job(probs[0], "   ") is None  # -> no_code


def test_early_exit_is_configurable(pool):
    code = "x = int(input())\nprint(x if x != 2 else -1)"
    inputs, expected = ["1", "2", "3", "4"], ["1", "2", "3", "4"]
    early, full = pool.grade([stdio(code, inputs, expected), stdio(code, inputs, expected, early_exit=False)])
    assert (early["verdict"], early["tests_passed"]) == ("failed", 1)
    assert (full["verdict"], full["tests_passed"]) == ("failed", 3)


def test_stdin_semantics_match_the_reference(pool):
    """Edge cases of the reference's stdin replacement and program wrapping, graded by both."""
    import reference_runners as reference

    from simplesd.prompts import Problem

    cases = [
        ("import sys\na = sys.stdin.readline()\nprint(repr(a))", "x\ny", "'x'", True),  # no newline kept
        ("import sys\nprint(len(sys.stdin.readlines()))", "a\nb\n", "3", True),
        ("import sys\nprint(sys.stdin.read().split())", "1 2\n3", "['1', '2', '3']", True),
        ("import sys\nprint(42)\nsys.exit(0)\nprint(43)", "1", "42", True),  # SystemExit ends it normally
        ("def main():\n    global x\n    x = 1\nmain()\nprint(x)", "1", "1", True),
        ("x = 5\ndef f():\n    return x\nprint(f())", "1", "5", True),  # a closure still sees x
        ("x = 5\ndef f():\n    global x\n    x += 1\n    return x\nprint(f())", "1", "6", False),  # no global x
        ("print(open(0).read().strip())", "hello", "hello", False),  # the module's open is the real one
        ("import sys\nprint(sys.stdin.buffer.read())", "1", "1", False),  # a StringIO has no buffer
        ("import sys\nsys.stdout.close()", "1", "", False),  # the capture's close takes an argument
        ("import os\nprint(os.getcwd())", "1", "/", False),  # guarded to None by the reference
        # the import block's names (bound once in the worker, before it forks: harness.preload_imports)
        ("print(sqrt(16), gcd(4, 6), deque([1]), List)", "1", "4.0 2 deque([1]) typing.List", True),
        ("print(stdin is sys.stdin, help)", "1", "False None", True),  # bound at load time; help guarded
        ("print(7)\nquit()\nprint(8)", "1", "7", False),  # quit is None under the guard: a TypeError
        ("print(7)\nexit()\nprint(8)", "1", "7", True),  # exit stays (stdin programs): SystemExit ends it
    ]
    ours = pool.grade([stdio(code, [given], [want]) for code, given, want, _ in cases])
    for (code, given, want, expect), r in zip(cases, ours):
        p = Problem("t", benchmark="livecodebench", tests=[{"input": given, "output": want}])
        ref = reference.lcb_check(p, "```python\n" + code + "\n```", timeout=2)
        assert (r["verdict"] == "passed") == ref == expect, (code, r, ref)


def test_a_program_that_rebinds_the_import_blocks_names_leaves_them_for_the_next(pool):
    """Every program starts from the worker's one preloaded import block; what a program rebinds there is its own."""
    clobber = Job("call", "gcd = None\nsqrt = None\nclass Solution:\n    def f(self, x):\n        return 0", timeout=2.0,
                  inputs=["4"], fn_name="f", secret={"expected": ["0"]})
    use = Job("call", "class Solution:\n    def f(self, x):\n        return int(sqrt(x)) + gcd(4, 6)", timeout=2.0,
              inputs=["4"], fn_name="f", secret={"expected": ["4"]})
    res = pool.grade([clobber, use] * 4)
    assert [r["verdict"] for r in res] == ["passed"] * 8, res


# --- hostile programs: every sandbox promise --------------------------------------------------------------

def test_no_network(pool):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    code = ("import socket\ntry:\n    s = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', %d)); print('open')\n"
            "except OSError as e:\n    print('blocked')\n"
            "try:\n    socket.socket(socket.AF_INET6); print('v6')\nexcept OSError:\n    print('blocked')") % port
    r = pool.grade([stdio(code, ["0"], ["blocked\nblocked"], timeout=5)])[0]
    srv.close()
    assert r["verdict"] == "passed", r


def test_writes_only_inside_its_own_directory(pool, tmp_path):
    target = tmp_path / "pwned.txt"
    import os

    outside = [str(target), "/var/tmp/pwned", "/etc/pwned", os.path.expanduser("~") + "/pwned", os.getcwd() + "/pwned"]
    code = ("import os\nok = []\nfor p in %r:\n"
            "    try:\n        fd = os.open(p, os.O_CREAT | os.O_WRONLY); os.close(fd); ok.append(p)\n"
            "    except OSError:\n        pass\n"
            "fd = os.open('mine.txt', os.O_CREAT | os.O_WRONLY); os.write(fd, b'x'); os.close(fd)\n"
            "print(len(ok), os.path.getsize('mine.txt'))") % outside
    r = pool.grade([stdio(code, ["0"], ["0 1"])])[0]
    assert r["verdict"] == "passed", r
    assert not any(os.path.exists(p) for p in outside)


def test_environment_home_and_other_processes_are_invisible(pool, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("SIMPLESD_TEST_SECRET", "s3cr3t-value")
    home_file = tmp_path / "id_rsa"
    home_file.write_text("PRIVATE KEY")
    code = ("import os\nleaks = []\n"
            "if any('s3cr3t' in v for v in os.environ.values()): leaks.append('env')\n"
            "for p in ['/proc/%d/environ', '/proc/1/environ', '/proc/self/environ']:\n"
            "    try:\n        if b's3cr3t' in open(p, 'rb').read(): leaks.append(p)\n    except OSError:\n        pass\n"
            "try:\n    open(%r).read(); leaks.append('key')\nexcept OSError:\n    pass\n"
            "if len([p for p in os.listdir('/proc') if p.isdigit()]) > 1: leaks.append('procs')\n"
            "print(leaks)") % (os.getpid(), str(home_file))
    # the pool's workers were started before the secret was set; a fresh pool sees it in the parent's env
    with GraderPool(workers=1, probe=False) as fresh:
        r = fresh.grade([stdio(code, ["0"], ["[]"])])[0]
    assert r["verdict"] == "passed", r


def test_limits_on_threads_output_and_cpu(pool):
    threads = ("import threading, time\nn = 0\ntry:\n    for _ in range(500):\n"
               "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start(); n += 1\n"
               "except RuntimeError:\n    pass\nprint(n < 500)")
    flood = "print('x' * (40 * 1024 * 1024))"
    spin_threads = ("import threading\ndef spin():\n    while True:\n        pass\n"
                    "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()")
    got = pool.grade([stdio(threads, ["0"], ["True"]), stdio(flood, ["0"], ["x"]),
                      stdio(spin_threads, ["0"], ["1"], timeout=1.0)])
    assert [r["verdict"] for r in got] == ["passed", "failed", "timeout"]
    assert "output_limit" in got[1]["detail"]


def test_killed_at_timeout_with_everything_it_started(pool):
    import os

    # the program forks a sleeper (os.fork is disabled by the reference guard; posix.fork is not) and spins
    code = ("import posix, time\npid = posix.fork()\nif pid == 0:\n    posix.setsid()\n    time.sleep(120)\n"
            "while True:\n    pass")
    r = pool.grade([stdio(code, ["0"], ["1"], timeout=1.0)])[0]
    assert r["verdict"] == "timeout"
    uids = {w.proc.pid: None for w in pool.workers}
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            continue
        uid = int(status.split("Uid:")[1].split()[0])
        if uid in pool.program_uids or "State:\tZ" in status and int(status.split("PPid:")[1].split()[0]) in uids:
            leftovers.append(pid)
    assert leftovers == []


def test_cannot_fake_a_humaneval_pass(pool):
    probs = {p.task_id: p for p in load_benchmark("humaneval", str(HUMANEVAL))}
    p = probs["HumanEval/0"]
    attempts = {
        "exit before asserts": "    import sys\n    sys.exit(0)\n",
        "exit()": "    exit(0)\n",
        "hard exit": "    import os\n    os._exit(0)\n",
        "prints passed": "    print('passed')\n    return None\n",
        "always-equal object": ("    class E:\n        def __eq__(self, o): return True\n"
                                "        def __bool__(self): return True\n    return E()\n"),
        "patches builtins": ("    import builtins\n    builtins.AssertionError = type('N', (Exception,), {})\n"
                             "    builtins.abs = lambda x: 0\n    return False\n"),
        "replaces the checker": "    return False\n\ndef check(candidate):\n    pass\n",
        "kills its parent": "    import posix\n    posix.kill(posix.getppid(), 9)\n    posix.kill(-1, 9)\n    return True\n",
    }
    results = pool.grade([make_job(p, body) for body in attempts.values()])
    verdicts = dict(zip(attempts, (r["verdict"] for r in results)))
    assert all(v != "passed" for v in verdicts.values()), verdicts
    # the pool is intact afterwards
    assert pool.grade([make_job(p, p.canonical_solution)])[0]["verdict"] == "passed"


# --- HumanEval: real data, canonical solutions pass, mutants fail, same verdicts as the reference ----------

def _mutants(problem):
    """Wrong constant, off-by-one comparison, swapped operator: one mutant each, in the solution's body."""
    import ast

    prompt_lines = problem.prompt.count("\n")
    base = problem.prompt + problem.canonical_solution
    out = {}
    for name in ("constant", "compare", "operator"):
        tree = ast.parse(base)
        done = False
        for node in ast.walk(tree):
            if done or getattr(node, "lineno", 0) <= prompt_lines:
                continue
            if name == "constant" and isinstance(node, ast.Constant) and type(node.value) is int:
                node.value += 1
                done = True
            elif name == "compare" and isinstance(node, ast.Compare):
                swap = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                        ast.NotEq: ast.Eq}
                if type(node.ops[0]) in swap:
                    node.ops[0] = swap[type(node.ops[0])]()
                    done = True
            elif name == "operator" and isinstance(node, ast.BinOp):
                swap = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
                        ast.Mod: ast.FloorDiv, ast.Div: ast.Mult}
                if type(node.op) in swap:
                    node.op = swap[type(node.op)]()
                    done = True
        if done:
            out[name] = ast.unparse(tree)
    return out


def test_humaneval_canonical_all_pass_and_mutants_fail(pool):
    probs = load_benchmark("humaneval", str(HUMANEVAL))
    assert len(probs) == 164
    canon = pool.grade([make_job(p, p.canonical_solution) for p in probs])
    failing = [(p.task_id, r) for p, r in zip(probs, canon) if r["verdict"] != "passed"]
    assert failing == []
    mutants = [(p, kind, code) for p in probs for kind, code in _mutants(p).items()]
    assert len(mutants) > 300
    verdicts = pool.grade([make_job(p, code) for p, _, code in mutants])
    killed = sum(r["verdict"] != "passed" for r in verdicts)
    assert killed / len(mutants) > 0.85, (killed, len(mutants))
    by_kind = {}
    for (_, kind, _), r in zip(mutants, verdicts):
        by_kind.setdefault(kind, []).append(r["verdict"] != "passed")
    assert all(sum(v) / len(v) > 0.75 for v in by_kind.values()), {k: sum(v) / len(v) for k, v in by_kind.items()}


def test_same_verdicts_as_the_reference_runners(pool):
    """Every fourth HumanEval problem's canonical solution and mutants, and the LiveCodeBench fixtures' correct,
    wrong and crashing solutions: the sandboxed grader and the re-created reference agree on pass/fail."""
    import reference_runners as reference

    probs = load_benchmark("humaneval", str(HUMANEVAL))[::4]
    cases = [(p, p.canonical_solution) for p in probs] + [(p, c) for p in probs for c in _mutants(p).values()]
    ours = pool.grade([make_job(p, c) for p, c in cases])
    theirs = [reference.humaneval_check(p, c) for p, c in cases]
    assert [r["verdict"] == "passed" for r in ours] == theirs

    rows, sols = lcb_fixtures.build(n_problems=5, tests_per_problem=6)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "lcb.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        lcb = {p.task_id: p for p in load_benchmark("livecodebench", str(f))}
    cases = [(lcb[q], resp) for q, items in sols.items() for resp, v in items if v in ("passed", "failed", "runtime_error")]
    ours = pool.grade([make_job(p, resp, timeout=2) for p, resp in cases])
    theirs = [reference.lcb_check(p, resp, timeout=2) for p, resp in cases]
    assert [r["verdict"] == "passed" for r in ours] == theirs
    assert sum(theirs) == 5  # one correct solution per problem


# --- LiveCodeBench fixtures through `ssd check` --------------------------------------------------------------

def test_ssd_check_livecodebench(tmp_path):
    rows, sols = lcb_fixtures.build(n_problems=6, tests_per_problem=5)
    problems = tmp_path / "lcb.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    solutions = tmp_path / "solutions.jsonl"
    expected = []
    with open(solutions, "w") as f:
        for qid, items in sols.items():
            for resp, verdict in items:
                f.write(json.dumps({"task_id": qid, "completion": resp}) + "\n")
                expected.append((qid, verdict))
    r = ssd("check", "--benchmark", "livecodebench", "--problems", problems, "--solutions", solutions,
            "--out", tmp_path / "out", "eval.timeout=1", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    verdicts = read_jsonl(tmp_path / "out" / "verdicts.jsonl")
    assert [(v["task_id"], v["verdict"]) for v in verdicts] == expected
    assert [v["index"] for v in verdicts[:5]] == [0, 1, 2, 3, 4]
    assert verdicts[0]["tests_total"] == 5 and verdicts[0]["tests_passed"] == 5
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["overall"]["pass@1"]["value"] == pytest.approx(0.2)  # 1 of 5 per problem
    assert summary["overall"]["pass@5"]["value"] == pytest.approx(1.0)
    assert set(summary["by_difficulty"]) == {"easy", "medium", "hard"}
    assert summary["grader"]["timeout_s"] == 1.0 and summary["grader"]["sandbox"]["probe"]["passed"]
    assert "pass@1: 0.2000" in r.stdout


def test_lcb_repository_loader(tmp_path):
    """A clone of the hub repository (test.jsonl .. test6.jsonl) loads through `datasets`, the same call that
    reads the hub id for users who can reach it."""
    rows, _ = lcb_fixtures.build(n_problems=6, tests_per_problem=3)
    repo = tmp_path / "code_generation_lite"
    repo.mkdir()
    (repo / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (repo / "test6.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    probs = load_benchmark("livecodebench", str(repo))
    assert [p.task_id for p in probs] == [r["question_id"] for r in rows]
    assert probs[3].fn_name == "twoSum" and len(probs[0].tests) == 3


def test_lcb_window_selection():
    rows, _ = lcb_fixtures.build(n_problems=12, tests_per_problem=2)
    from simplesd.execute.benchmarks import _lcb_problem

    probs = [_lcb_problem(r, "x") for r in rows]
    picked = select_window(probs, "2025-02", "2025-05", None)
    assert sorted({p.contest_date[:7] for p in picked}) == ["2025-02", "2025-03", "2025-04", "2025-05"]
    assert all(p.difficulty == "hard" for p in select_window(probs, None, None, ["hard"]))


def test_ssd_check_bad_inputs(tmp_path):
    sol = tmp_path / "s.jsonl"
    sol.write_text('{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": "Nope/1", "completion": "x"}\n')
    r = ssd("check", "--benchmark", "humaneval", "--problems", HUMANEVAL, "--solutions", sol, "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.strip() == f"ssd: error: {sol}:2: field 'task_id': unknown task 'Nope/1' (not in the problem file)"
    sol.write_text('{"task_id": "HumanEval/0"}\n')
    r = ssd("check", "--benchmark", "humaneval", "--problems", HUMANEVAL, "--solutions", sol, "--out", tmp_path / "o")
    assert r.returncode == 2 and "s.jsonl:1: missing field 'completion'" in r.stderr
    assert not (tmp_path / "o" / "summary.json").exists()
