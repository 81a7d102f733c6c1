"""`ssd sweep`: the pipeline over a grid of settings."""

from __future__ import annotations

from ..sweep import sweep
from . import COUNT, MODEL_HELP, PROMPTS_HELP, config_from, progress

STAGE, WRITES, EXAMPLE = sweep, True, "train.epochs=2"
HELP = "run the pipeline over a grid of sampling/training settings, compare pass@1"
DESCRIPTION = ("Runs `ssd run` for every point of the grid (the product of the --grid values) in "
               "OUT/points/<point>/, all evaluated over the same T_eval sweep (the base once, in "
               "OUT/base-eval/), skipping points already done; then writes OUT/sweep.json, sweep.csv, sweep.md "
               "and sweep.png (heatmap of the SSD model's best pass@1 per T_train and truncation, with its "
               "best T_eval). On a cluster: one job per point with --point I, then the same command without "
               "--point to gather.")


def add_arguments(p) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--prompts", help=PROMPTS_HELP)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and its values, e.g. sample.temperature=1.0,1.5,2.0 (repeat for more keys)")
    p.add_argument("--eval-temperatures", help="T_eval values every point is evaluated at (eval.temperatures)")
    p.add_argument("--point", type=COUNT, help="run only point I (0-based, in grid order) and stop")
    p.add_argument("--out", required=True, help="sweep directory")


def main(args) -> int:
    from ..sweep import parse_grid

    cfg = config_from(args, **{"eval.temperatures": args.eval_temperatures})
    r = sweep(cfg, parse_grid(args.grid), args.out, point=args.point, progress=progress(args), overwrite=args.overwrite)
    if r is not None:
        print(f"sweep: best point {r['best']} -> {args.out}/sweep.md, sweep.png")
    return 0
