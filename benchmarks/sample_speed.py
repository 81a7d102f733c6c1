"""Sampling throughput: the batched transformers backend (`ssd sample`) vs a naive per-prompt generate loop.

Both draw from the same model with the same truncation (paper defaults: T 1.5, top-k 20, top-p 0.8) and the
same token cap; the tiny random-weight model rarely emits EOS, so both generate about the same token count.
Run by hand:  python benchmarks/sample_speed.py [--model DIR] [--prompts 64] [--max-new-tokens 128]
"""

from __future__ import annotations

import dataclasses
import json
import time

import torch
from common import parser, prepare


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    work, model_dir = prepare(args)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from simplesd.chat import encode, render
    from simplesd.config import SSDConfig
    from simplesd.models import stop_token_ids
    from simplesd.prompts import load_problems, user_prompt
    from simplesd.sample import sample
    from simplesd.sampling.backends import generate_batch, sample_seed
    from simplesd.testbed.tiny import demo_problems_path

    demo = load_problems(str(demo_problems_path()))
    prompts_file = work / "prompts.jsonl"
    with open(prompts_file, "w") as f:
        for i in range(args.prompts):
            p = demo[i % len(demo)]
            f.write(json.dumps({"question_id": f"b{i}", "question": p.question + f" (case {i})",
                                "starter_code": p.starter_code}) + "\n")

    # naive: one generate() per prompt, in file order
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    stops = stop_token_ids(model, tok)
    problems = load_problems(str(prompts_file))
    decoding = dataclasses.replace(SSDConfig().sample.to_decoding(), max_new_tokens=args.max_new_tokens)  # the paper's
    t0 = time.perf_counter()
    naive_tokens = 0
    for p in problems:
        res = generate_batch(model, tok, encode(tok, [render(tok, user_prompt(p))]), decoding, stops, seeds=[sample_seed(0, p.id, 0)])
        naive_tokens += res[0]["completion_tokens"]
    naive_s = time.perf_counter() - t0

    # batched: the real `ssd sample` stage (length buckets, batches, shards, manifest)
    cfg = SSDConfig()
    cfg.model.name_or_path = str(model_dir)
    cfg.prompts.path = str(prompts_file)
    cfg.sample.max_new_tokens = args.max_new_tokens
    cfg.sample.batch_size = args.batch_size
    cfg.sample.shard_size = args.batch_size * 2
    cfg.sample.device = "cpu"
    m = sample(cfg, work / "samples", progress=False)
    batched_tokens = m["generated_tokens_this_run"]
    batched_s = m["timings_s"]["generate"]

    rows = [("naive per-prompt loop", naive_tokens, naive_s), (f"ssd sample (batch {args.batch_size})", batched_tokens, batched_s)]
    print(f"\nmodel {model_dir}, {args.prompts} prompts x 1 sample, max_new_tokens {args.max_new_tokens}, "
          f"{torch.get_num_threads()} threads\n")
    print("| backend | tokens | seconds | tokens/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    base = naive_tokens / naive_s
    for name, tokens, secs in rows:
        print(f"| {name} | {tokens} | {secs:.2f} | {tokens / secs:.0f} | {tokens / secs / base:.1f}x |")


if __name__ == "__main__":
    main()
