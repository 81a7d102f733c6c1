"""`ssd run`: every stage, resumable."""

from __future__ import annotations

from ..pipeline import run
from . import MODEL_HELP, POSITIVE_INT, PROMPTS_HELP, config_from, progress

STAGE, WRITES, EXAMPLE = run, True, "sample.temperature=1.0"
HELP = "sample -> filter -> train (-> evaluate) in one resumable run"
DESCRIPTION = ("Runs every stage into OUT/{sample,filter,train}. Stages whose outputs are complete for "
               "the same config and inputs are skipped, so rerunning resumes.")


def add_arguments(p) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--prompts", help=PROMPTS_HELP)
    p.add_argument("--out", help="run directory (output_dir)")
    p.add_argument("--rounds", type=POSITIVE_INT, help="iterative SSD: this many rounds, each sampling from the last "
                   "round's model, in OUT/round-R/ (pipeline.rounds; see pipeline.* for prompts, init, early stop)")


def main(args) -> int:
    cfg = config_from(args, **{"output_dir": args.out, "pipeline.rounds": args.rounds})
    run(cfg, progress=progress(args), overwrite=args.overwrite)
    return 0
