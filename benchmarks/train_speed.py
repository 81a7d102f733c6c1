"""Training throughput of `ssd train` (TRL SFTTrainer) with and without sequence packing.

Samples of very different lengths (as SSD's are) waste most of a padded batch; TRL's best-fit-decreasing
packing fills rows of max_seq_length instead, with position ids restarting per sample so that no sample
attends to another. tokens/s counts real (non-padding) tokens.
Run by hand:  python benchmarks/train_speed.py [--model DIR] [--examples 256] [--max-seq-length 512]
"""

from __future__ import annotations

import json
import random

import torch
from common import parser, prepare


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    work, model_dir = prepare(args)

    from simplesd.config import SSDConfig

    rng = random.Random(0)
    data = work / "train.jsonl"
    words = ["x", "=", "total", "+", "for", "i", "in", "range(n):", "print(", ")", "return", "if", "else:", "\n    "]
    with open(data, "w") as f:
        for i in range(args.examples):
            n = int(rng.lognormvariate(3.5, 0.8))  # long-tailed lengths, like real samples
            body = " ".join(rng.choice(words) for _ in range(max(n, 2)))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Solve problem {i}."},
                                             {"role": "assistant", "content": f"```python\n{body}\n```"}]}) + "\n")

    from simplesd.train import train

    rows = []
    for packing in (False, True):
        cfg = SSDConfig()
        cfg.model.name_or_path = str(model_dir)
        cfg.train.learning_rate = 1e-4
        cfg.train.per_device_batch_size = args.batch_size
        cfg.train.effective_batch_size = args.batch_size
        cfg.train.max_seq_length = args.max_seq_length
        cfg.train.packing = packing
        cfg.train.save_steps = 10**6
        cfg.train.logging_steps = 10
        m = train(cfg, data, work / f"train-packing-{packing}", progress=False)
        c = m["counts"]
        secs = m["timings_s"]["train"]
        rows.append((packing, c["optimizer_steps"], c["trained_tokens"], secs))

    print(f"\nmodel {model_dir}, {args.examples} examples, max_seq_length {args.max_seq_length}, "
          f"{args.batch_size} rows per step, {torch.get_num_threads()} threads\n")
    print("| packing | steps | tokens | seconds | tokens/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    base = rows[0][2] / rows[0][3]
    for packing, steps, tokens, secs in rows:
        print(f"| {'on' if packing else 'off'} | {steps} | {tokens} | {secs:.2f} | {tokens / secs:.0f} | {tokens / secs / base:.2f}x |")


if __name__ == "__main__":
    main()
