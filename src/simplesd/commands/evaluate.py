"""`ssd evaluate`: generate at one or more T_eval and grade."""

from __future__ import annotations

from ..evaluate import evaluate
from . import COUNT, NON_NEGATIVE, POSITIVE_INT, PROBABILITY, config_from, progress
from .check import BENCHMARKS, add_selection, selection

STAGE, WRITES, EXAMPLE = evaluate, True, "eval.max_new_tokens=2048"
HELP = "generate with a model at one or more T_eval and grade"
DESCRIPTION = ("Samples eval.n responses per problem with the sampling backend and grades them in the "
               "sandbox, per temperature (OUT/T<t>/), then writes OUT/results.json with pass@k per T_eval.")


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="hub id or local directory")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--problems", required=True, help="benchmark file (or its hub id)")
    p.add_argument("--n", type=POSITIVE_INT, help="samples per problem (eval.n)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--temperature", type=NON_NEGATIVE, help="one T_eval (eval.temperature)")
    g.add_argument("--sweep", help="several T_eval, e.g. 0.2,0.6,1.0 (eval.temperatures)")
    p.add_argument("--top-p", type=PROBABILITY, help="eval.top_p")
    p.add_argument("--top-k", type=COUNT, help="eval.top_k (0 = off)")
    p.add_argument("--out", required=True, help="output directory")
    add_selection(p)


def main(args) -> int:
    values = {"eval.benchmark": args.benchmark, "eval.problems": args.problems, "eval.n": args.n,
              "eval.temperatures": args.sweep, "eval.top_p": args.top_p, "eval.top_k": args.top_k, **selection(args)}
    if args.temperature is not None:  # one T_eval: the sweep's list is emptied
        values.update({"eval.temperature": args.temperature, "eval.temperatures": []})
    cfg = config_from(args, **values)
    r = evaluate(cfg, args.model, args.out, progress=progress(args), overwrite=args.overwrite)
    for t, row in r["by_temperature"].items():
        print(f"  T_eval {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    print(f"evaluate: best T_eval {r['best_temperature']} -> {args.out}/results.json")
    return 0
