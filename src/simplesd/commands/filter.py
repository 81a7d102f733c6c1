"""`ssd filter`: step 2."""

from __future__ import annotations

from ..filter import filter_samples
from . import config_from

STAGE, WRITES, EXAMPLE = filter_samples, True, "filter.drop_shortest_fraction=0.2"
HELP = "step 2: drop empty and shortest samples, write train.jsonl"
DESCRIPTION = ("Filters samples (a `ssd sample` directory or a JSONL file) into train.jsonl "
               '({"messages": [user, assistant]} per line) and stats.json.')


def add_arguments(p) -> None:
    p.add_argument("--samples", required=True, help="`ssd sample` output directory or a samples JSONL file")
    p.add_argument("--out", required=True, help="output directory")


def main(args) -> int:
    m = filter_samples(config_from(args), args.samples, args.out, overwrite=args.overwrite)
    c = m["counts"]
    print(f"filter: kept {c['kept']} of {c['total']}: {c['train_rows']} -> {args.out}/train.jsonl, "
          f"{c['held_out']} held out -> {args.out}/heldout.jsonl")
    return 0
