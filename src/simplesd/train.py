"""Step 3: plain SFT on (prompt, own sample) pairs with TRL's SFTTrainer.

Each `train.jsonl` row `{"messages": [user, assistant]}` becomes a conversational prompt-completion example
(`prompt=[user]`, `completion=[assistant]`). TRL renders it with the tokenizer's chat template (the same one
the sampler used, with the generation prompt) and computes the loss on the completion only: the prompt's
tokens get label -100, the assistant's tokens and the end-of-turn token the template closes them with are
trained. Full fine-tuning or LoRA (PEFT) by config; gradient accumulation reaches the effective batch;
checkpoints resume; loss, LR and tokens/s go to the console and TensorBoard. The final model is saved as a
plain transformers directory (LoRA merged by default) that transformers and vLLM load as is.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from .config import SSDConfig, reads, to_dict
from .io import InputError, fingerprint_path, output_dir, read_jsonl, remove_path, replace_path
from .stage import Stage

log = logging.getLogger(__name__)


def read_train_rows(path: str | Path) -> list[dict]:
    """train.jsonl -> [{"prompt": [user], "completion": [assistant]}], validating every line."""
    rows = []
    for lineno, rec in read_jsonl(path):
        where = f"{path}:{lineno}"
        msgs = rec.get("messages")
        if not isinstance(msgs, list):
            raise InputError(f"{where}: field 'messages' must be a list of chat messages")
        if len(msgs) != 2 or not all(isinstance(m, dict) for m in msgs):
            raise InputError(f"{where}: field 'messages' must hold exactly [user, assistant], got {len(msgs)} items")
        for i, (m, role) in enumerate(zip(msgs, ("user", "assistant"))):
            if m.get("role") != role:
                raise InputError(f"{where}: field 'messages[{i}].role' must be '{role}', got {m.get('role')!r}")
            if not isinstance(m.get("content"), str):
                raise InputError(f"{where}: field 'messages[{i}].content' must be a string")
        rows.append({"prompt": [{"role": "user", "content": msgs[0]["content"]}],
                     "completion": [{"role": "assistant", "content": msgs[1]["content"]}]})
    if not rows:
        raise InputError(f"{path}: no training examples")
    return rows


def check_rendering(tokenizer, rows: list[dict], where: str) -> dict:
    """Whether the chat template renders each training row as the sampler's context followed by the sample itself.

    Training sees template([user, assistant]); sampling saw template([user], generation prompt) and then wrote
    the output. They agree when the first is the second plus the output verbatim (plus the end-of-turn). A
    template that rewrites the assistant turn (e.g. a Thinking template moving an unclosed reasoning block into
    an empty <think></think>) breaks that: such rows are counted, in the manifest, with a warning."""
    from .prompts import chat_text

    differ, example = 0, None
    for i, row in enumerate(rows):
        context = chat_text(tokenizer, row["prompt"][0]["content"])
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        if not full.startswith(context + row["completion"][0]["content"]):
            differ += 1
            if example is None:
                cut = len(context) if full.startswith(context) else 0
                example = {"row": i + 1, "sampled": (context + row["completion"][0]["content"])[cut : cut + 120],
                           "trained": full[cut : cut + 120]}
    if differ:
        log.warning("WARNING: %s: the chat template renders %d of %d rows differently from what was sampled (row %d: "
                    "sampled %r, trained on %r); the model is trained on text it did not generate",
                    where, differ, len(rows), example["row"], example["sampled"], example["trained"])
    return {"rows": len(rows), "rendered_as_sampled": len(rows) - differ, "rendered_differently": differ,
            "first_difference": example}


def _precision(name: str) -> tuple[bool, bool]:
    """(bf16, fp16) for SFTConfig."""
    import torch

    if name == "auto":
        return (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), False
    if name in ("bf16", "fp16") and not torch.cuda.is_available():
        raise InputError(f"config key 'train.precision': {name} needs a GPU here; use auto or fp32")
    return name == "bf16", name == "fp16"


def build_trainer(cfg: SSDConfig, train_file: str | Path, out_dir: str | Path, progress: bool = True,
                  rows: list[dict] | None = None):
    """The configured SFTTrainer (not yet trained), its tokenizer, the accumulation steps used, and how the chat
    template renders the rows (`check_rendering`)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from .models import load_tokenizer

    t = cfg.train
    rows = read_train_rows(train_file) if rows is None else rows  # (`train` has read and checked them already)
    _check_optional_kernels(t)
    tokenizer = load_tokenizer(cfg.model)
    bf16, fp16 = _precision(t.precision)
    out_dir = Path(out_dir)
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a fraction of the total steps
        optim=t.optimizer,
        weight_decay=t.weight_decay,
        per_device_train_batch_size=t.per_device_batch_size,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        max_length=t.max_seq_length,
        packing=t.packing,
        bf16=bf16,
        fp16=fp16,
        # also lets torchrun/accelerate run several CPU processes (gloo); an FSDP or DeepSpeed launch keeps its
        # engine (on a CPU too, where the library allows it)
        use_cpu=not torch.cuda.is_available() and not _sharded_launch(),
        dataloader_pin_memory=torch.cuda.is_available(),
        gradient_checkpointing=t.gradient_checkpointing,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        report_to=["tensorboard"],
        seed=t.seed,
        disable_tqdm=not progress,
        # train.weights_dtype decides the weights' dtype (float32 master weights for full fine-tuning)
        model_init_kwargs=_model_init_kwargs(cfg),
        use_liger_kernel=t.use_liger_kernel,
        # transformers' own count (prompt and sample tokens, padding excluded) is saved in every checkpoint, so a
        # resumed run reports the tokens of the whole training (TRL's counter restarts from zero)
        include_num_input_tokens_seen="non_padding",
    )
    # accumulate to the effective batch over all processes (args.world_size asks accelerate how many there are)
    per_step = t.per_device_batch_size * args.world_size
    if t.effective_batch_size % per_step:
        raise InputError(
            f"config key 'train.effective_batch_size': {t.effective_batch_size} is not a multiple of "
            f"per_device_batch_size x processes = {per_step}"
        )
    accum = args.gradient_accumulation_steps = t.effective_batch_size // per_step
    peft_config = None
    if t.lora.enabled:
        from peft import LoraConfig as PeftLoraConfig

        targets = t.lora.target_modules
        peft_config = PeftLoraConfig(
            r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout, task_type="CAUSAL_LM",
            target_modules=targets[0] if targets == ["all-linear"] else targets,
        )
    trainer = _trainer_class()(
        model=cfg.model.name_or_path,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    from transformers.integrations import TensorBoardCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(out_dir / "tensorboard")
    return trainer, tokenizer, accum, check_rendering(tokenizer, rows, str(train_file))


def weights_dtype(cfg: SSDConfig, for_merge: bool = False):
    """train.weights_dtype resolved: float32 master weights for full fine-tuning, model.dtype (auto: bf16 on GPUs
    that have it, else float32, so a float16 checkpoint is not trained in float16 on a CPU) for a frozen LoRA
    base and for merging into it."""
    import torch

    from .models import resolve_dtype

    t = cfg.train
    if t.weights_dtype != "auto":
        return getattr(torch, t.weights_dtype)
    if t.lora.enabled or for_merge:
        return resolve_dtype(cfg.model.dtype, "cuda" if torch.cuda.is_available() else "cpu")
    return torch.float32


def _model_init_kwargs(cfg: SSDConfig, for_merge: bool = False) -> dict:
    """How SFTTrainer loads the model: the weights' dtype, the attention kernel, and QLoRA's 4-bit base."""
    dtype = weights_dtype(cfg, for_merge)
    kwargs = {"dtype": str(dtype).removeprefix("torch."), "trust_remote_code": cfg.model.trust_remote_code,
              "revision": cfg.model.revision}
    if cfg.model.attn_implementation:
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    if cfg.train.lora.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_storage=dtype)
    return kwargs


def _check_optional_kernels(t) -> None:
    import importlib.util

    if t.lora.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("config key 'train.lora.load_in_4bit': QLoRA needs bitsandbytes (pip install bitsandbytes)")
    if t.use_liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        raise InputError("config key 'train.use_liger_kernel': needs Liger (pip install liger-kernel; CUDA GPUs with Triton)")


def merge_adapter(cfg: SSDConfig, adapter_dir: str | Path, out_dir: str | Path) -> None:
    """Reloads the base unquantized (model.dtype, on the CPU) and merges the trained LoRA adapter into it: works
    the same after plain LoRA, QLoRA (whose training base was 4-bit) and FSDP/ZeRO-3 (whose live weights are
    sharded)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    kwargs = {k: v for k, v in _model_init_kwargs(cfg, for_merge=True).items()
              if k not in ("quantization_config", "attn_implementation")}
    base = AutoModelForCausalLM.from_pretrained(cfg.model.name_or_path, **kwargs)
    PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().save_pretrained(out_dir)


def _sharded_launch() -> bool:
    """True under `accelerate launch` with an FSDP or DeepSpeed config (accelerate says so in the environment)."""
    return any(os.environ.get(k, "").lower() in ("1", "true") for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def _trainer_class():
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class _LogLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

    class SSDTrainer(SFTTrainer):
        """SFTTrainer that logs training tokens per second and always logs the last step (so the final loss is the
        last step's, not the last multiple of logging_steps)."""

        def train(self, *args, **kwargs):
            self._tps_mark = (time.time(), self.state.num_input_tokens_seen)
            self.add_callback(_LogLastStep())
            return super().train(*args, **kwargs)

        def log(self, logs, start_time=None):
            if "loss" in logs and hasattr(self, "_tps_mark"):
                now, tokens = time.time(), self.state.num_input_tokens_seen
                t0, n0 = self._tps_mark
                if now > t0 and tokens > n0:
                    logs["tokens_per_second"] = round((tokens - n0) / (now - t0), 2)
                self._tps_mark = (now, tokens)
            return super().log(logs, start_time)

    return SSDTrainer


def train_identity(cfg: SSDConfig, train_file: str | Path) -> tuple[dict, dict]:
    """(the settings that decide the trained model, the inputs' fingerprints): what `stage.json` records."""
    inputs = {"model": fingerprint_path(cfg.model.name_or_path), "train_file": fingerprint_path(train_file)}
    return {"model": to_dict(cfg.model), "train": to_dict(cfg.train)}, inputs


TRAIN_WORK = ("checkpoints", "model", "adapter", ".model.tmp")
TRAIN_BOOKKEEPING = ("tensorboard", "log_history.json")


@reads("model", "train")
def train(cfg: SSDConfig, train_file: str | Path, out_dir: str | Path, *, progress: bool = True,
          overwrite: bool = False) -> dict | None:
    """Fine-tunes cfg.model on train_file; writes out_dir/model (loadable as is), checkpoints, TensorBoard logs.
    Resumes from the last checkpoint; a directory holding checkpoints or a model of another config or other inputs
    is refused unless `overwrite`.

    Returns the manifest; under a multi-process launch (torchrun / accelerate launch) only the main process
    writes files and gets it, the others get None."""
    from transformers.trainer_utils import get_last_checkpoint

    from .models import check_model_files, peak_gpu_memory_gb

    out_dir = output_dir(out_dir)
    train_file = Path(train_file)
    if not train_file.is_file():
        raise InputError(f"{train_file}: training file not found (run `ssd filter` first)")
    config, inputs = train_identity(cfg, train_file)
    st = Stage("train", out_dir, config, inputs, work=TRAIN_WORK, bookkeeping=TRAIN_BOOKKEEPING)
    if st.finished():
        return st.manifest
    check_model_files(cfg.model)
    rows = read_train_rows(train_file)  # every row checked before anything is written
    ckpt_dir = out_dir / "checkpoints"
    # one process claims the directory; the others get the same answer without touching it
    st.claim(overwrite, write=int(os.environ.get("RANK", "0")) == 0)

    trainer, tokenizer, accum, rendering = build_trainer(cfg, train_file, out_dir, progress, rows)
    trainer.accelerator.wait_for_everyone()
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        log.info("train: resuming from %s", last)
    st.lap("setup")
    result = trainer.train(resume_from_checkpoint=last)
    st.lap("train")
    if trainer.state.global_step == 0:  # nothing trained: no model is written, and the stage is not complete
        raise InputError(f"{train_file}: training took no optimizer step ({len(trainer.train_dataset)} examples, "
                         f"train.epochs {cfg.train.epochs:g}, train.max_steps {cfg.train.max_steps}); nothing to save")

    # every process takes part in saving (FSDP/ZeRO gather the weights); only the main process writes files
    main = trainer.accelerator.is_main_process
    final, tmp = out_dir / "model", out_dir / ".model.tmp"
    if main:
        remove_path(tmp)
    if cfg.train.lora.enabled:
        trainer.save_model(str(out_dir / "adapter"))
        trainer.accelerator.wait_for_everyone()
        if cfg.train.lora.merge and main:
            merge_adapter(cfg, out_dir / "adapter", tmp)
        elif main:
            shutil.copytree(out_dir / "adapter", tmp)
    else:
        trainer.save_model(str(tmp))
    trainer.accelerator.wait_for_everyone()
    if not main:
        return None
    tokenizer.save_pretrained(tmp)
    replace_path(tmp, final)
    st.lap("save")

    history = [h for h in trainer.state.log_history if "loss" in h]
    losses = [h["loss"] for h in history]
    tps = [h["tokens_per_second"] for h in history if "tokens_per_second" in h]
    counts = {
        "examples": len(trainer.train_dataset),
        "optimizer_steps": trainer.state.global_step,
        "gradient_accumulation_steps": accum,
        "processes": trainer.args.world_size,
        "trained_tokens": int(trainer.state.num_input_tokens_seen),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss,
        "mean_tokens_per_second": round(sum(tps) / len(tps), 2) if tps else None,
        "rows_rendered_differently": rendering["rendered_differently"],
    }
    st.write_json("log_history.json", trainer.state.log_history)
    return st.finish(
        counts, outputs=["model", "log_history.json"] + (["adapter"] if cfg.train.lora.enabled else []),
        seeds={"train.seed": cfg.train.seed},
        extra={"resumed_from": last, "precision": cfg.train.precision,
               "weights_dtype": str(weights_dtype(cfg)).removeprefix("torch."),
               "distributed": str(trainer.accelerator.distributed_type).removeprefix("DistributedType."),
               "fsdp": bool(trainer.is_fsdp_enabled), "deepspeed": bool(trainer.is_deepspeed_enabled),
               "peak_gpu_memory_gb": peak_gpu_memory_gb(), "chat_template_rendering": rendering},
    )
