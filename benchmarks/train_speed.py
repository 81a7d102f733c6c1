"""Training throughput of `ssd train` (TRL SFTTrainer) with and without sequence packing, from text rows (TRL
renders them with the chat template) and from token-exact rows (the sampler's ids, TRL's pre-tokenized path).

Samples of very different lengths (as SSD's are) waste most of a padded batch; TRL's best-fit-decreasing
packing fills rows of max_seq_length instead, with position ids restarting per sample so that no sample
attends to another. tokens/s counts real (non-padding) tokens. The token-exact rows are the text rows' own
tokens (context rendered by the template, the body, the end-of-turn), so both train the same sequences but one
token: the "\n" the ChatML template writes after <|im_end|>, which TRL trains on text rows and a model never draws.
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

    from transformers import AutoTokenizer

    from simplesd.chat import encode, render
    from simplesd.train import train

    tok = AutoTokenizer.from_pretrained(model_dir)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    exact = work / "train-token-exact.jsonl"
    with open(data) as f, open(exact, "w") as g:
        for line in f:
            row = json.loads(line)
            row["prompt_ids"] = encode(tok, [render(tok, row["messages"][:-1])])[0]
            row["completion_ids"] = encode(tok, [row["messages"][-1]["content"]])[0] + [eot]
            row["finish_reason"] = "stop"
            g.write(json.dumps(row) + "\n")

    rows = []
    for form, path in (("text", data), ("token-exact", exact)):
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
            m = train(cfg, path, work / f"train-{form}-packing-{packing}", progress=False)
            c = m["counts"]
            rows.append((form, packing, c["optimizer_steps"], c["trained_tokens"], m["timings_s"]["train"]))

    print(f"\nmodel {model_dir}, {args.examples} examples, max_seq_length {args.max_seq_length}, "
          f"{args.batch_size} rows per step, {torch.get_num_threads()} threads\n")
    print("| rows | packing | steps | tokens | seconds | tokens/s | vs text, same packing |")
    print("|---|---|---:|---:|---:|---:|---:|")
    speed = {(form, packing): tokens / secs for form, packing, _, tokens, secs in rows}
    for form, packing, steps, tokens, secs in rows:
        print(f"| {form} | {'on' if packing else 'off'} | {steps} | {tokens} | {secs:.2f} | {tokens / secs:.0f} | "
              f"{speed[(form, packing)] / speed[('text', packing)]:.3f}x |")


if __name__ == "__main__":
    main()
