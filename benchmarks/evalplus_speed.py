"""MBPP+ grading: simplesd's sandboxed grader vs EvalPlus's own evaluator (the `evalplus` package from PyPI), on the
same MBPP+ file and the same solutions, same number of processes, in one run. Prints the verdict agreement (base
and base + plus, solution by solution) and the throughput of each, expected outputs cached in both (each first
computes them from the canonical solutions once: timed apart; EvalPlus is timed from its first check to its last,
without its CLI's 20 s watchdog sleep). Tasks whose canonical solution itself computes for
a second or more (summed over its inputs; `--heavy`) are timed apart: there both graders mostly wait for the
program (Mbpp/599 sums range(10**8) for 20 s), so their time says little about a grader.

Solutions per task: the canonical solution; the original MBPP reference code of the same task (real code that
EvalPlus's extra inputs catch out now and then); a wrong one (returns None). EvalPlus is run offline with its
MBPP_OVERRIDE_PATH, in its own environment (it pins numpy and friends):

    python3 -m venv /tmp/evp && /tmp/evp/bin/pip install evalplus==0.3.1   # or --no-deps plus what it imports
    python benchmarks/evalplus_speed.py --evalplus-python /tmp/evp/bin/python [--workers 2] [--tasks N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def solutions(mbpp_plus: Path, mbpp: Path, tasks: int | None) -> list[dict]:
    with gzip.open(mbpp, "rt") as f:
        original = {json.loads(line)["task_id"]: json.loads(line)["code"] for line in f}
    with gzip.open(mbpp_plus, "rt") as f:
        records = [json.loads(line) for line in f][:tasks]
    out = []
    for r in records:
        number = int(r["task_id"].split("/")[1])
        out.append({"task_id": r["task_id"], "solution": r["prompt"] + "\n" + r["canonical_solution"], "kind": "canonical"})
        if number in original:
            out.append({"task_id": r["task_id"], "solution": r["prompt"] + "\n" + original[number], "kind": "mbpp_code"})
        out.append({"task_id": r["task_id"], "solution": f"def {r['entry_point']}(*args):\n    return None\n", "kind": "wrong"})
    return out, records


# EvalPlus's own evaluator (evalplus.evaluate's get_groundtruth and check_correctness, in a ProcessPoolExecutor
# as its `evaluate` runs them, fast_check as its CLI's default), timed without the CLI's watchdog thread (it
# sleeps 20 s before the process can exit, which would add up to 20 s to every run)
DRIVER = """
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from evalplus.data import get_mbpp_plus, get_mbpp_plus_hash
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
from evalplus.evaluate import check_correctness, get_groundtruth
samples_path, workers, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
problems = get_mbpp_plus()
t0 = time.perf_counter()
expected = get_groundtruth(problems, get_mbpp_plus_hash(), MBPP_OUTPUT_NOT_NONE_TASKS)
ground_truth = time.perf_counter() - t0
samples = [json.loads(line) for line in open(samples_path)]
t0 = time.perf_counter()
with ProcessPoolExecutor(max_workers=workers) as pool:
    futures = [pool.submit(check_correctness, "mbpp", i, problems[s["task_id"]], s["solution"], expected[s["task_id"]],
                           False, True) for i, s in enumerate(samples)]
    results = [f.result() for f in futures]
grading = time.perf_counter() - t0
json.dump({"ground_truth_s": ground_truth, "grading_s": grading,
           "verdicts": [[r["base"][0], r["plus"][0]] for r in results]}, open(out, "w"))
"""


def run_evalplus(python: str, plus_file: Path, samples: Path, workers: int, home: Path) -> dict:
    env = {**os.environ, "MBPP_OVERRIDE_PATH": str(plus_file), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    out = samples.with_suffix(".evalplus.json")
    subprocess.run([python, "-c", DRIVER, str(samples), str(workers), str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def compare(sols, rows, ep) -> tuple[int, int, list[str]]:
    agree_base = agree_plus = 0
    disagreements = []
    for k, (s, row) in enumerate(zip(sols, rows)):
        theirs = dict(zip(("base_status", "plus_status"), ep["verdicts"][k]))
        their_base = theirs["base_status"] == "pass"
        their_plus = their_base and theirs["plus_status"] == "pass"
        our_base, our_plus = row.base_verdict == "passed", row.verdict == "passed"
        agree_base += our_base == their_base
        agree_plus += our_plus == their_plus
        if (our_base, our_plus) != (their_base, their_plus):
            disagreements.append(f"{s['task_id']} ({s['kind']}): simplesd base {our_base} plus {our_plus} "
                                 f"({row.verdict}: {row.detail}); evalplus {theirs['base_status']} {theirs['plus_status']}")
    return agree_base, agree_plus, disagreements


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evalplus-python", required=True, help="a Python with the evalplus package")
    ap.add_argument("--mbpp-plus", default=str(DATA / "MbppPlus-prerelease-767efcc.jsonl.gz"))
    ap.add_argument("--mbpp", default=str(DATA / "mbpp.jsonl.gz"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=None, help="the first N tasks (default: all)")
    ap.add_argument("--heavy", type=float, default=1.0,
                    help="a task whose canonical solution computes this many seconds or more (all its inputs) is "
                         "compute-bound: timed apart, the grader's overhead is not what its time measures")
    args = ap.parse_args()

    from simplesd.config import EvalConfig
    from simplesd.evaluate import grade
    from simplesd.execute.benchmarks import attach_expected, load_benchmark

    sols, records = solutions(Path(args.mbpp_plus), Path(args.mbpp), args.tasks)
    table, lines, ok = [], [], True
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        os.environ["SIMPLESD_CACHE"] = str(d / "simplesd-cache")
        every = d / "all.jsonl"
        every.write_text("".join(json.dumps(r) + "\n" for r in records))
        t0 = time.perf_counter()
        problems = load_benchmark("mbpp+", str(every))
        attach_expected(problems, args.workers, progress=False)
        canonical = {p.task_id: sum(p.meta["canonical_seconds"]) for p in problems}
        ours_first = time.perf_counter() - t0
        groups = {"light": [r for r in records if canonical[r["task_id"]] < args.heavy],
                  "compute-bound": [r for r in records if canonical[r["task_id"]] >= args.heavy]}
        runs = [(name, recs, kind) for name, recs in groups.items() if recs
                for kind in (("all", "canonical", "mbpp_code", "wrong") if name == "light" else ("all",))]
        for name, recs, kind in runs:
            ids = {r["task_id"] for r in recs}
            group_sols = [s for s in sols if s["task_id"] in ids and kind in ("all", s["kind"])]
            plus_file = d / f"{name}.jsonl"
            plus_file.write_text("".join(json.dumps(r) + "\n" for r in recs))
            samples = d / f"{name}-{kind}-samples.jsonl"
            samples.write_text("".join(json.dumps({"task_id": s["task_id"], "solution": s["solution"]}) + "\n" for s in group_sols))
            ep = run_evalplus(args.evalplus_python, plus_file, samples, args.workers, d)  # the first on a file computes
            first_ep = ep["ground_truth_s"] if kind == "all" else 0.0  # EvalPlus's expected outputs (then cached)
            ep_seconds = ep["grading_s"]
            problems = load_benchmark("mbpp+", str(plus_file))
            pairs = [(s["task_id"], "```python\n" + s["solution"] + "\n```") for s in group_sols]
            t0 = time.perf_counter()
            rows, _ = grade(problems, pairs, EvalConfig(benchmark="mbpp+", problems=str(plus_file), workers=args.workers), progress=False)
            ours = time.perf_counter() - t0
            agree_base, agree_plus, bad = compare(group_sols, rows, ep)
            ok = ok and not bad
            n = len(group_sols)
            inputs = sum(len(r["base_input"]) + len(r["plus_input"]) for r in recs)
            passed = f"{sum(r.base_verdict == 'passed' for r in rows)} / {sum(r.passed for r in rows)}"
            table.append(f"| {name} | {kind} | {len(recs)} | {inputs} | {n} | {passed} | {f'{first_ep:.1f}' if first_ep else ''} | {ep_seconds:.1f} | "
                         f"{ours:.1f} | {n / ep_seconds:.1f} | {n / ours:.1f} | {ep_seconds / ours:.1f}x | {agree_base}/{n} | {agree_plus}/{n} |")
            if kind == "all":
                lines += [f"{name}, differing verdicts:"] + ["  " + x for x in bad[:20]]
    print(f"MBPP+ {args.mbpp_plus} ({len(records)} tasks), solutions: canonical, original MBPP code, wrong; "
          f"{args.workers} workers; simplesd computed the expected outputs in {ours_first:.1f} s (cached after)\n")
    print("| tasks | solutions | n | inputs | programs | passed base / base+plus | evalplus expected outputs s | evalplus s "
          "| simplesd s | evalplus programs/s | simplesd programs/s | speed-up | base identical | base+plus identical |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(table))
    print("\n" + "\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
