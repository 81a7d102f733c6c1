"""`ssd testbed build`, `ssd testbed config` and `ssd testbed scaled`."""

from __future__ import annotations

from pathlib import Path

from . import NO_PROGRESS_HELP

STAGE, WRITES, PROGRESS = None, False, False
HELP = "the testbed: rebuild its base model, write a config for it, or scale a real model down"
DESCRIPTION = "The testbed (the shipped tiny code model and its task family)."


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="testbed_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="rebuild the shipped base model from its config",
                       description="Generates the task splits, trains the tokenizer, pretrains the tiny Llama with "
                       "simplesd's train stage, exports it as float16 and measures dev greedy pass@1. About an hour "
                       "on 2 CPU cores, minutes on a GPU. Resumes from its last checkpoint. Its settings are "
                       "src/simplesd/testbed/build.yaml (configs/testbed/build.yaml in a checkout).")
    b.add_argument("--out", default="runs/testbed-build", help="build directory [default: runs/testbed-build]")
    b.add_argument("--config", metavar="FILE", help="build settings read on top of the shipped build.yaml")
    b.add_argument("--reduced", action="store_true", help="the same pipeline at toy size (build-reduced.yaml; "
                   "seconds; for tests)")
    b.add_argument("--install", action="store_true", help="copy the built model into the installed package "
                   "(replacing the shipped base; for maintainers)")
    b.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    c = sub.add_parser("config", help="write the testbed's task splits and a config for `ssd run` / `ssd sweep`",
                       description="Writes OUT/{ssd,dev,test}.jsonl (the shipped base's splits) and OUT/testbed.yaml: "
                       "the demo's config (the shipped base, the paper's sampling, the tiny model's LR), so every "
                       "command runs on the testbed, e.g. `ssd run --config OUT/testbed.yaml --rounds 3`.")
    c.add_argument("--out", default="runs/testbed", help="directory [default: runs/testbed]")
    c.add_argument("--config", metavar="FILE", help="a demo YAML file read on top of the shipped demo.yaml")
    c.add_argument("--quick", action="store_true", help="the demo's --quick sizes (a couple of minutes per run)")
    c.add_argument("--split", default="dev", choices=["dev", "test"], help="evaluation split [default: dev, where "
                   "settings are chosen]")
    s = sub.add_parser("scaled", help="a tiny random-weight model in a real model's architecture, with its tokenizer",
                       description="Reads DIR's (or a hub id's) config.json, scales it down (2 layers, hidden 64; 8 "
                       "experts for a MoE) and writes a random-weight model in that architecture beside verbatim "
                       "copies of its tokenizer, chat template and generation config: try every stage on your "
                       "model's real template and stop tokens in seconds, before spending GPU hours.")
    s.add_argument("--like", required=True, metavar="DIR", help="the real model: a local directory or a hub id")
    s.add_argument("--out", required=True, metavar="DIR", help="where to write the scaled model")
    s.add_argument("--stop-probability", type=float, default=None, metavar="P", help="raise the stop ids' logits so "
                   "that each step (T=1, no truncation) ends a sample with about probability P")


def main(args) -> int:
    from . import progress

    if args.testbed_command == "scaled":
        from ..models import model_location
        from ..testbed.shapes import scaled_copy

        model_location(args.like)  # a path that does not exist is said so
        if args.stop_probability is not None and not 0 < args.stop_probability < 1:
            from ..io import InputError

            raise InputError(f"--stop-probability: must be in (0, 1), got {args.stop_probability}")
        print(f"scaled model: {scaled_copy(args.like, args.out, stop_probability=args.stop_probability)}")
        return 0
    if args.testbed_command == "config":
        from ..testbed.demo import write_testbed_config

        path = write_testbed_config(args.out, quick=args.quick, split=args.split, config=args.config)
        print(f"testbed config: {path}\n  ssd run --config {path} --rounds 3\n  ssd sweep --config {path} --out "
              f"{Path(args.out) / 'sweep'} --grid sample.temperature=1.0,1.5 --eval-temperatures 0,0.9")
        return 0
    from ..testbed.artefacts import install
    from ..testbed.build import REDUCED_YAML, build, load_build_config

    if args.reduced and args.config:
        from ..io import InputError

        raise InputError("ssd testbed build: give --reduced or --config, not both")
    built = build(args.out, load_build_config(REDUCED_YAML if args.reduced else args.config), progress=progress(args))
    if args.install:
        print(f"installed -> {install(args.out)}")
    return 0 if built else 1
