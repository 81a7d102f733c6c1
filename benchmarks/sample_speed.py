"""Sampling throughput of the transformers backend on the demo's own evaluation work, beside its FLOP bound.

The workload is one arm of `ssd demo`'s evaluation: the shipped base on the test split's prompts, at greedy and at
T_eval 0.9 with n 5 (top-k 20, top-p 0.95, 320 new tokens), batches of 32 prompts (demo.yaml). Three ways to draw
the same samples, side by side in one run:

- `model.generate` (transformers' loop, DynamicCache), drawing with SeededDraw: what `ssd sample` ran until now;
- the same with `cache_implementation="static"`;
- `decode_pruned` (what `ssd sample` runs): the same model calls, a cache written in place, each prompt prefilled
  once, finished rows leaving the batch.

Every way must draw the same tokens (checked, row by row). The bound: a decoding step costs about 2 x parameters
FLOPs per token (attention over the context is extra); the machine's FLOP/s is measured with a large float32 matmul
at the same thread count, so `bound tokens/s = matmul FLOP/s / (2 x parameters)`.

Run by hand:  python benchmarks/sample_speed.py [--problems 200] [--threads 2]
"""

from __future__ import annotations

import dataclasses
import time

import torch
from common import parser


def matmul_flops(threads: int) -> float:
    """float32 FLOP/s of a 1024 x 1024 matmul on `threads` threads (the best of 5)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 1024**3 / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--problems", type=int, default=200, help="test-split prompts (200: a whole demo arm's)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-dynamic", action="store_true", help="leave out plain generate (the slowest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile
    from pathlib import Path

    from simplesd.chat import encode, render
    from simplesd.config import SSDConfig
    from simplesd.models import load_model, load_tokenizer, stop_token_ids
    from simplesd.prompts import context, load_problems
    from simplesd.sampling.backends import generate_batch, sample_seed
    from simplesd.testbed.artefacts import shipped_base, verify_base, write_splits

    base = Path(args.model) if args.model else shipped_base()
    work = Path(tempfile.mkdtemp(prefix="ssd-bench-"))
    test = write_splits(verify_base(shipped_base()), work, names=("test",))["test"]
    cfg = SSDConfig()
    cfg.model.name_or_path = str(base)
    tok, model = load_tokenizer(cfg.model), load_model(cfg.model, "cpu")
    stops = stop_token_ids(model, tok)
    params = sum(p.numel() for p in model.parameters())
    problems = load_problems(str(test), "livecodebench")[: args.problems]
    ids = encode(tok, [render(tok, context(p, None)) for p in problems])
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))  # as `ssd sample` plans: longest first
    flops = matmul_flops(args.threads)
    bound = flops / (2 * params)

    def run(loop: str, d, static: bool = False):
        import simplesd.sampling.backends as backends

        kwargs_of = backends.generation_kwargs
        if static:
            backends.generation_kwargs = lambda dd: {**kwargs_of(dd), "cache_implementation": "static"}
        try:
            drawn, tokens, t0 = {}, 0, time.perf_counter()
            for s in range(0, len(order), args.batch_size):
                batch = order[s : s + args.batch_size]
                seeds = [] if d.greedy else [sample_seed(d.seed, problems[j].id, k) for j in batch for k in range(d.n)]
                for row, r in enumerate(generate_batch(model, tok, [ids[j] for j in batch], d, stops, seeds, loop=loop)):
                    drawn[(batch[row // d.n], row % d.n)] = r["completion_token_ids"]
                    tokens += r["completion_tokens"]
            return drawn, tokens, time.perf_counter() - t0
        finally:
            backends.generation_kwargs = kwargs_of

    print(f"\nshipped base ({params:,} parameters), {len(problems)} test prompts, batches of {args.batch_size}, "
          f"{args.threads} threads; matmul {flops / 1e9:.0f} GFLOP/s -> bound {bound:,.0f} tokens/s\n")
    print("| decoding | way | samples | tokens | seconds | tokens/s | of the bound | speed-up | same tokens |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    sample_cfg = dataclasses.replace(cfg.sample.to_decoding(), max_new_tokens=320)
    for name, d in (("greedy", dataclasses.replace(sample_cfg, temperature=0.0, n=1)),
                    ("T 0.9, n 5", dataclasses.replace(sample_cfg, temperature=0.9, top_k=20, top_p=0.95, n=5))):
        ways = ([] if args.skip_dynamic else [("generate (DynamicCache)", "generate", False)]) + [
            ("generate (StaticCache)", "generate", True), ("decode_pruned (ssd sample)", "pruned", False)]
        anchor = None
        for label, loop, static in ways:
            drawn, tokens, secs = run(loop, d, static)
            anchor = anchor or (drawn, tokens / secs)
            same = sum(drawn[k] == anchor[0][k] for k in drawn)
            print(f"| {name} | {label} | {len(drawn)} | {tokens:,} | {secs:.1f} | {tokens / secs:,.0f} | "
                  f"{tokens / secs / bound:.1%} | {tokens / secs / anchor[1]:.1f}x | {same}/{len(drawn)} |")


if __name__ == "__main__":
    main()
