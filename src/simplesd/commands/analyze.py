"""`ssd analyze`: lock/fork token statistics of base vs tuned."""

from __future__ import annotations

from pathlib import Path

from ..analyze import analyze
from ..io import InputError
from . import config_from, progress

STAGE, WRITES, EXAMPLE = analyze, True, "analyze.max_texts=32"
HELP = "teacher-force base and tuned: lock/fork token statistics"
DESCRIPTION = ("Teacher-forces both models on the same (prompt, response) texts and writes, per response "
               "token, entropy, top-1, rank, tail mass outside the sampling support (sample.* settings), "
               "support size and KL(tuned||base) split into tail-mass and within-support parts; classifies "
               "positions as lock or fork (analyze.lock_threshold) and, when texts carry ground-truth spans, "
               "scores the rule against them. Writes OUT/tokens.parquet, OUT/summary.json, OUT/plots/*.png. "
               "With --run RUN_DIR every path defaults to that run's (its base, train/model, "
               "filter/heldout.jsonl, analysis/).")


def add_arguments(p) -> None:
    p.add_argument("--run", metavar="RUN_DIR", help="take base, tuned, texts and out from an `ssd run` directory")
    p.add_argument("--base", help="base model (hub id or directory)")
    p.add_argument("--tuned", help="fine-tuned model directory")
    p.add_argument("--texts", help="JSONL: {messages: [user, assistant]} (train.jsonl, heldout.jsonl) or sample "
                   "records {prompt, output}; optional spans [[start, end, lock|fork], ...]")
    p.add_argument("--out", help="output directory")
    p.add_argument("--csv", action="store_true", help="also write tokens.csv")


def main(args) -> int:
    from ..config import load_config
    from ..io import read_json

    cfg = config_from(args)
    base, tuned, texts, out = args.base, args.tuned, args.texts, args.out
    if args.run:
        run = Path(args.run)
        # the run's own model and sampling settings, then this command's --config and overrides
        cfg = load_config(args.config, args.overrides, base=load_config(run / "config.yaml"))
        base = base or cfg.model.name_or_path
        tuned = tuned or str(run / "train" / "model")
        texts = texts or str(run / "filter" / "heldout.jsonl")
        out = out or str(run / "analysis")
    for flag, value in (("--base", base), ("--tuned", tuned), ("--texts", texts), ("--out", out)):
        if not value:
            raise InputError(f"ssd analyze: {flag} is required (or give --run RUN_DIR)")
    m = analyze(cfg, base, tuned, texts, out, progress=progress(args), overwrite=args.overwrite, csv=args.csv)
    print(f"analyze: {m['counts']['tokens']} tokens of {m['counts']['texts']} texts -> {out}")
    print("  " + read_json(Path(out) / "summary.json")["findings"]["statement"])
    return 0
