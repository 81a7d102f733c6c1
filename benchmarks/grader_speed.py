"""Grading throughput: the sandboxed grader pool vs a faithful re-creation of the reference runners'
execution model (LiveCodeBench's check_correctness / human-eval's: a multiprocessing Manager and a process per
program, tests in-process under per-test alarms), on the same programs, same concurrency, same verdicts.

Programs: LiveCodeBench-format fixture problems (stdin and LeetCode-style, `--tests` tests each) with correct,
wrong and crashing solutions; HumanEval's 164 canonical solutions and their mutants (wrong constant, off-by-one
comparison, swapped operator). Programs that run into the time limit cost the limit in both runners, so they
are timed apart from the rest.

The limit no grader can beat: the programs' own work, run unsandboxed in one process (compile, load, every test;
HumanEval's check in-process), its CPU seconds divided by the workers. The table gives the grader's wall time as
a ratio to it, and the grader's overhead per program: (its wall time - the limit) x workers / programs.
Run by hand:  python benchmarks/grader_speed.py [--workers 2] [--lcb-problems 60] [--tests 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def corpus(args):
    import lcb_fixtures
    from test_grader import _mutants

    from simplesd.execute.benchmarks import load_benchmark

    rows, sols = lcb_fixtures.build(args.lcb_problems, args.tests)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "lcb.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        lcb = {p.task_id: p for p in load_benchmark("livecodebench", str(f))}
    lcb_cases = [(lcb[q], resp) for q, items in sols.items() for resp, v in items
                 if v in ("passed", "failed", "runtime_error", "timeout")]
    he_cases = []
    for p in load_benchmark("humaneval", args.humaneval):
        he_cases.append((p, p.canonical_solution))
        he_cases += [(p, code) for code in _mutants(p).values()]
    return {"LiveCodeBench": lcb_cases, "HumanEval": he_cases}


def own_cpu_seconds(jobs) -> float:
    """CPU seconds of the jobs' programs doing their own work, unsandboxed, in a forked child (the reference guard
    and the programs' side effects stay there): what is left of grading when isolation costs nothing."""
    import os
    import pickle

    from simplesd.execute import harness

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        sink = os.open(os.devnull, os.O_WRONLY)
        t0 = time.process_time()
        for job in jobs:
            if job.kind == "humaneval":  # the candidate and its check in one process, as human-eval runs them
                scope: dict = {}
                try:
                    exec(compile(job.code, "<program>", "exec"), scope)
                    exec(compile(job.secret["test"], "<test>", "exec"), scope)
                    scope["check"](scope[job.entry_point])
                except BaseException:  # noqa: BLE001 - a failing program: its work is done
                    pass
            else:
                harness.run({"kind": job.kind, "code": job.code, "inputs": job.inputs, "fn_name": job.fn_name,
                             "entry_point": job.entry_point, "output_rule": job.output_rule, "output_cap": 1 << 24},
                            sink, sink)
        os.write(w, pickle.dumps(time.process_time() - t0))
        os._exit(0)
    os.close(w)
    data = b"".join(iter(lambda: os.read(r, 1 << 16), b""))
    os.waitpid(pid, 0)
    return pickle.loads(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lcb-problems", type=int, default=60)
    ap.add_argument("--tests", type=int, default=30, help="tests per LiveCodeBench problem")
    ap.add_argument("--lcb-timeout", type=int, default=6, help="seconds per test (the paper's runner: 6)")
    ap.add_argument("--max-timeouts", type=int, default=4, help="time-limited programs timed per benchmark")
    ap.add_argument("--humaneval", default=str(ROOT.parent / "shared" / "data" / "HumanEval.jsonl.gz"))
    args = ap.parse_args()

    from simplesd.execute import reference
    from simplesd.execute.benchmarks import make_job, tests_total
    from simplesd.execute.pool import GraderPool

    def ref(case):
        p, resp = case
        if p.benchmark == "humaneval":
            return reference.humaneval_check(p, resp)
        return reference.lcb_check(p, resp, args.lcb_timeout)

    def timeout_of(p):
        return None if p.benchmark == "humaneval" else args.lcb_timeout

    t0 = time.perf_counter()
    pool = GraderPool(workers=args.workers)
    start_s = time.perf_counter() - t0
    rows = []
    try:
        for name, cases in corpus(args).items():
            first = pool.grade([make_job(p, r, timeout_of(p)) for p, r in cases])
            groups = {"finish": [c for c, v in zip(cases, first) if v["verdict"] != "timeout"],
                      "time out": [c for c, v in zip(cases, first) if v["verdict"] == "timeout"][:args.max_timeouts]}
            for label, group in groups.items():
                if not group:
                    continue
                n_tests = sum(tests_total(p) for p, _ in group)
                t0 = time.perf_counter()
                jobs = [make_job(p, r, timeout_of(p)) for p, r in group]
                ours = [v["verdict"] == "passed" for v in pool.grade(jobs)]
                ours_s = time.perf_counter() - t0
                limit_s = (own_cpu_seconds(jobs) if label == "finish" else len(group) * args.lcb_timeout) / args.workers
                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.workers) as ex:
                    theirs = list(ex.map(ref, group))
                ref_s = time.perf_counter() - t0
                agree = sum(a == b for a, b in zip(ours, theirs))
                rows.append((f"{name}, programs that {label}", len(group), n_tests, sum(ours), ref_s, ours_s, agree, limit_s))
    finally:
        pool.close()

    print(f"\n{args.workers} programs at a time; pool start with its sandbox self-test: {start_s:.2f} s (not in the table)\n")
    cg = pool.sandbox_info["cgroups"]
    print(f"sandbox: {pool.sandbox_info['root']}, cgroups {cg['version'] or 'none (' + cg['why_not'] + ')'}\n")
    print("| programs | n | test cases | passed | reference s | ours s | limit s | reference programs/s | ours programs/s | "
          "speed-up | ours / limit | overhead ms/program | same verdicts |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, tests, passed, ref_s, ours_s, agree, limit_s in rows:
        print(f"| {label} | {n} | {tests} | {passed} | {ref_s:.2f} | {ours_s:.2f} | {limit_s:.2f} | {n / ref_s:.1f} | "
              f"{n / ours_s:.1f} | {ref_s / ours_s:.1f}x | {ours_s / limit_s:.2f}x | "
              f"{(ours_s - limit_s) * args.workers / n * 1e3:.2f} | {agree}/{n} |")


if __name__ == "__main__":
    main()
