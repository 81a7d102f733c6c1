"""`ssd train`: step 3."""

from __future__ import annotations

from ..train import train
from . import MODEL_HELP, config_from, progress

STAGE, WRITES, EXAMPLE = train, True, "train.learning_rate=1e-5"
HELP = "step 3: SFT on the filtered samples with TRL"
DESCRIPTION = ("Fine-tunes the model on train.jsonl (loss on the assistant turn and its end-of-turn token "
               "only). Writes OUT/model (loadable by transformers and vLLM), checkpoints and TensorBoard "
               "logs; rerunning resumes from the last checkpoint. Launch with `accelerate launch -m "
               "simplesd.cli train ...` for several GPUs.")


def add_arguments(p) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--data", required=True, help="train.jsonl from `ssd filter`")
    p.add_argument("--out", required=True, help="output directory")


def main(args) -> int:
    m = train(config_from(args), args.data, args.out, progress=progress(args), overwrite=args.overwrite)
    if m is not None:  # the main process of a multi-process launch
        print(f"train: {m['counts']['optimizer_steps']} steps, final loss {m['counts']['final_loss']} -> {args.out}/model")
    return 0
