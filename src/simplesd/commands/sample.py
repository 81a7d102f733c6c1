"""`ssd sample`: step 1."""

from __future__ import annotations

from ..sample import sample
from . import MODEL_HELP, PROMPTS_HELP, config_from, progress

STAGE, WRITES, EXAMPLE = sample, True, "sample.temperature=1.0"
HELP = "step 1: draw N samples per problem from the frozen model"
DESCRIPTION = ("Samples cfg.sample.n solutions per problem into sharded JSONL with a manifest. The problems are "
               "deduplicated, checked against the benchmark eval.* evaluates on (decontamination; OUT/prompts.json "
               "lists what was dropped), shuffled by prompts.seed and capped first. Each sample is seeded from "
               "(sample.seed, prompt id, sample index), flagged truncated/looping/has_code/has_think/"
               "reasoning_unclosed, and keeps the token ids the model was fed and drew (what `ssd train` trains on). "
               "Rerunning the same command after a crash continues where it stopped.")


def add_arguments(p) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--prompts", help=PROMPTS_HELP)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--worker", metavar="I/N", help="be replica I of N: write only the missing shards I, I+N, ... "
                   "(one per node on a shared --out; then run once without --worker to write the manifest)")


def main(args) -> int:
    from ..prompts import prompt_story
    from ..sampling.flags import FLAGS
    from ..sampling.replicas import parse_worker

    worker = parse_worker(args.worker)
    m = sample(config_from(args), args.out, progress=progress(args), overwrite=args.overwrite, worker=worker)
    if m is None:
        print(f"sample: worker {args.worker} done -> {args.out}")
        return 0
    c = m["counts"]
    print(f"sample: {c['samples']} samples for {c['problems']} problems -> {args.out} "
          f"({', '.join(f'{f} {c.get(f, 0)}' for f in FLAGS)})")
    if c.get("thinking"):  # a Thinking model's samples: how many never closed their reasoning
        print(f"  reasoning: {c['thinking']} samples started in it, {c['without_think_close']} without </think> "
              f"({c['truncated_in_reasoning']} cut off by sample.max_new_tokens inside it)")
    if m.get("prompts"):
        print(f"  prompts: {prompt_story(m['prompts'])} (see {args.out}/prompts.json)")
    return 0
