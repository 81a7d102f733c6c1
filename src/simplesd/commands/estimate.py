"""`ssd estimate`: planning numbers for a config."""

from __future__ import annotations

from ..estimate import estimate
from ..io import InputError
from . import MODEL_HELP, POSITIVE, POSITIVE_INT, config_from

STAGE, WRITES, EXAMPLE = estimate, False, "sample.max_new_tokens=16384"
HELP = "expected sampling/training time and memory for a config"
DESCRIPTION = ("Prints planning numbers for a run: parameters (total, active), generated tokens, sampling "
               "tokens/s and hours on vLLM, training tokens, hours and memory per GPU, each from a formula over "
               "the model's shape and the token counts (src/simplesd/estimate.py says which).")


def add_arguments(p) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--prompts-count", type=POSITIVE_INT, help="prompts to sample on [default: prompts.max_prompts]")
    p.add_argument("--mean-sample-tokens", type=POSITIVE, help="mean sample length [default: from --samples, "
                   "else a quarter of sample.max_new_tokens]")
    p.add_argument("--samples", help="a finished `ssd sample` directory to take the mean sample length from")
    p.add_argument("--gpus", type=POSITIVE_INT, default=8, help="GPUs [default: 8]")
    p.add_argument("--gpu", default="h100", choices=["h100", "h200", "a100"], help="GPU kind [default: h100]")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def main(args) -> int:
    import json

    from ..estimate import format_estimate, mean_sample_tokens_from

    cfg = config_from(args)
    prompts = args.prompts_count if args.prompts_count is not None else cfg.prompts.max_prompts
    if not prompts:
        raise InputError("ssd estimate: give --prompts-count (or set prompts.max_prompts)")
    if args.mean_sample_tokens is not None:
        mean = args.mean_sample_tokens
    else:
        mean = mean_sample_tokens_from(args.samples) if args.samples else cfg.sample.max_new_tokens / 4
    e = estimate(cfg, prompts, mean, gpus=args.gpus, gpu=args.gpu)
    print(json.dumps(e, indent=2) if args.json else format_estimate(e))
    return 0
