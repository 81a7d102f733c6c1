"""`ssd demo`: SSD end to end on the shipped testbed model."""

from __future__ import annotations

STAGE, WRITES = None, True
HELP = "SSD end to end on the shipped testbed model, offline"
DESCRIPTION = ("Runs `ssd run` on the shipped tiny code model and its task family: evaluates "
               "the base over a T_eval sweep, self-distils it with the paper's sampling settings, evaluates "
               "the SSD model over the same sweep, and writes OUT/results.json (pass@1/pass@5 per T_eval, "
               "best-vs-best difference with a 95 % bootstrap CI, self-sample correctness, greedy failure "
               "kinds, stage times, lock/fork analyses) and OUT/report.html. About 8 minutes on 2 cores. Its "
               "settings are src/simplesd/testbed/demo.yaml (configs/testbed/demo.yaml in a checkout).")


def add_arguments(p) -> None:
    p.add_argument("--out", default="runs/demo", help="run directory [default: runs/demo]")
    p.add_argument("--config", metavar="FILE", help="a demo YAML file (sections ssd, quick, ablation) read on top of "
                   "the shipped demo.yaml")
    p.add_argument("--quick", action="store_true", help="a fraction of the prompts, problems and temperatures "
                   "(a couple of minutes; what CI runs)")
    p.add_argument("--ablation", action="store_true", help="also run the paper's stress test: T_train 2.0, no truncation")
    p.add_argument("--base", help="a base built by `ssd testbed build` [default: the shipped one]")
    p.add_argument("--split", default="test", choices=["test", "dev"],
                   help="evaluate on the test split (default) or on dev, where the demo's knobs are chosen")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.learning_rate=3e-4")


def main(args) -> int:
    from ..testbed.demo import demo
    from . import progress

    demo(args.out, quick=args.quick, ablation=args.ablation, base=args.base, split=args.split, config=args.config,
         overrides=args.overrides, progress=progress(args), overwrite=args.overwrite)
    return 0
