"""`ssd check`: grade existing generations."""

from __future__ import annotations

from ..evaluate import check
from . import config_from, progress

STAGE, WRITES, EXAMPLE = check, True, "eval.timeout=10"
BENCHMARKS = ["humaneval", "livecodebench"]
HELP = "grade existing generations in the sandbox"
DESCRIPTION = ("Grades solutions (JSONL with task_id and completion, the raw model response) against a "
               "benchmark's tests in the sandboxed grader. Writes OUT/verdicts.jsonl and OUT/summary.json "
               "(pass@k overall and by difficulty with bootstrap 95 % CIs).")


def add_arguments(p) -> None:
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--problems", required=True, help="HumanEval JSONL(.gz) or LiveCodeBench code_generation_lite JSONL")
    p.add_argument("--solutions", required=True, help="JSONL: task_id, completion")
    p.add_argument("--out", required=True, help="output directory")


def main(args) -> int:
    cfg = config_from(args, **{"eval.benchmark": args.benchmark, "eval.problems": args.problems})
    s = check(cfg, args.solutions, args.out, progress=progress(args), overwrite=args.overwrite)
    print(f"check: {sum(s['verdicts'].values())} solutions graded -> {args.out}/summary.json")
    for k, v in s["overall"].items():
        print(f"  {k}: {v['value']:.4f}  (95% CI {v['ci95'][0]:.4f}-{v['ci95'][1]:.4f}, {v['problems']} problems)")
    print("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items())))
    return 0
