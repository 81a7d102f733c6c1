"""`ssd decontaminate`: flag training prompts that overlap benchmark problems."""

from __future__ import annotations

from ..decontaminate import decontaminate
from . import PROMPTS_HELP, config_from

STAGE, WRITES, EXAMPLE = decontaminate, True, "prompts.ngram=10"
HELP = "flag training prompts that overlap benchmark problems"
DESCRIPTION = ("Checks every problem of a prompt file (any format `ssd sample` reads) against benchmark "
               "problem statements: flagged when they share a run of prompts.ngram words (13; lower-cased, "
               "whitespace and punctuation collapsed) or are equal after that normalisation. Writes "
               "OUT/clean.jsonl (the records kept, as given), OUT/report.json (flagged: index, prompt_id, "
               "benchmark, task_id, matched_ngrams, exact, example; counts) and OUT/manifest.json. `ssd sample` "
               "and `ssd run` do the same against the problems they evaluate on (prompts.decontaminate).")


def add_arguments(p) -> None:
    p.add_argument("--prompts", help=PROMPTS_HELP)
    p.add_argument("--against", action="append", default=[], metavar="BENCH:PATH", required=True,
                   help="benchmark to check against: BENCH:FILE, BENCH any eval.benchmark (humaneval, mbpp, livecodebench, ...; repeat for more)")
    p.add_argument("--out", required=True, help="output directory")


def main(args) -> int:
    m = decontaminate(config_from(args), args.out, against=args.against, overwrite=args.overwrite)
    c = m["counts"]
    print(f"decontaminate: {c['flagged']} of {c['prompts']} prompts flagged, {c['kept']} kept -> {args.out}/clean.jsonl")
    for bench, b in m["by_benchmark"].items():
        print(f"  {bench}: {b['flagged_prompts']} prompts overlap {b['matched_problems']} of {b['problems']} problems "
              f"({b['exact']} exact copies); details in {args.out}/report.json")
    return 0
