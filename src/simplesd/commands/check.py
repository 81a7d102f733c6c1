"""`ssd check`: grade existing generations."""

from __future__ import annotations

from ..evaluate import check
from ..execute.benchmarks import NAMES as BENCHMARKS
from . import POSITIVE_INT, config_from, progress

STAGE, WRITES, EXAMPLE = check, True, "eval.timeout=10"
HELP = "grade existing generations in the sandbox"
DESCRIPTION = ("Grades solutions (JSONL with task_id and completion, the raw model response) against a "
               "benchmark's tests in the sandboxed grader. Writes OUT/verdicts.jsonl and OUT/summary.json "
               "(pass@k overall and by difficulty with bootstrap 95 % CIs).")


def add_arguments(p) -> None:
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--problems", required=True, help="the benchmark's file (or hub id): HumanEval, HumanEval+/MBPP+ "
                   "(EvalPlus), MBPP, LiveCodeBench code_generation_lite, CodeContests, your own tests (custom)")
    p.add_argument("--solutions", required=True, help="JSONL: task_id, completion (or EvalPlus's solution)")
    p.add_argument("--out", required=True, help="output directory")
    add_selection(p)


def add_selection(p) -> None:
    """--limit and --ids: a quick look at some problems."""
    p.add_argument("--limit", type=POSITIVE_INT, help="grade only the first N problems (eval.max_problems)")
    p.add_argument("--ids", help="grade only these problems, comma-separated task ids (eval.task_ids)")


def selection(args) -> dict:
    return {"eval.max_problems": args.limit, "eval.task_ids": args.ids.split(",") if args.ids else None}


def main(args) -> int:
    cfg = config_from(args, **{"eval.benchmark": args.benchmark, "eval.problems": args.problems, **selection(args)})
    s = check(cfg, args.solutions, args.out, progress=progress(args), overwrite=args.overwrite)
    print(f"check: {sum(s['verdicts'].values())} solutions graded -> {args.out}/summary.json")
    for label, scores in (("", s["overall"]), ("base ", s.get("base", {}))):  # EvalPlus: base + plus, then base
        for k, v in scores.items():
            print(f"  {label}{k}: {v['value']:.4f}  (95% CI {v['ci95'][0]:.4f}-{v['ci95'][1]:.4f}, {v['problems']} problems)")
    print("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items())))
    return 0
