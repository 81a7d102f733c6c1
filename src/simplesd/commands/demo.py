"""`ssd demo`: SSD end to end on the shipped testbed model."""

from __future__ import annotations

STAGE, WRITES = None, True
HELP = "SSD end to end on the shipped testbed model, offline"
DESCRIPTION = ("Runs `ssd run` on the shipped tiny code model and its task family: evaluates three arms over the "
               "same T_eval sweep (the base; the control, i.e. the base under the no-training decoding rule "
               "eval.decoding=ssd_equivalent; the SSD model, self-distilled with the paper's sampling settings) and "
               "writes OUT/results.json (pass@1/pass@5 per T_eval and arm, best-vs-best SSD - base and SSD - control "
               "with paired 95 % bootstrap CIs, self-sample correctness, greedy failure kinds, stage times, lock/fork "
               "analyses) and OUT/report.html. About 14 minutes on 2 cores. Its settings are "
               "src/simplesd/testbed/demo.yaml (configs/testbed/demo.yaml in a checkout); its bases bases.yaml.")


def add_arguments(p) -> None:
    p.add_argument("--out", default=None, help="run directory [default: runs/demo]")
    p.add_argument("--config", metavar="FILE", help="a demo YAML file (sections ssd, quick, ablation) read on top of "
                   "the shipped demo.yaml")
    p.add_argument("--quick", action="store_true", help="a fraction of the prompts, problems and temperatures "
                   "(a couple of minutes; what CI runs)")
    p.add_argument("--ablation", action="store_true", help="also run the paper's stress test: T_train 2.0, no truncation")
    p.add_argument("--base", help="a shipped base by name (bases.yaml: strong is the default; `ssd demo --map` runs "
                   "them all) or a directory built by `ssd testbed build`")
    p.add_argument("--map", action="store_true", help="the demo on every shipped base, then a table and a plot of when "
                   "SSD helps (OUT/results.json, map.md, map.png; --ablation: on the weakest base too) [default --out: "
                   "runs/demo-map]")
    p.add_argument("--split", default="test", choices=["test", "dev"],
                   help="evaluate on the test split (default) or on dev, where the demo's knobs are chosen")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.learning_rate=3e-4")


def main(args) -> int:
    from ..io import InputError
    from ..testbed.demo import demo, demo_map
    from . import progress

    if args.map:
        if args.base or args.split != "test":
            raise InputError("ssd demo --map: runs every shipped base on the test split; leave out --base and --split")
        demo_map(args.out or "runs/demo-map", quick=args.quick, ablation=args.ablation, progress=progress(args),
                 overwrite=args.overwrite, config=args.config, overrides=args.overrides)
        return 0
    demo(args.out or "runs/demo", quick=args.quick, ablation=args.ablation, base=args.base, split=args.split,
         config=args.config, overrides=args.overrides, progress=progress(args), overwrite=args.overwrite)
    return 0
