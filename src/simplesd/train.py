"""Step 3: plain SFT on (prompt, own sample) pairs with TRL's SFTTrainer.

Token-exact by default: each row `ssd filter` writes holds the token ids the sampler fed the model
(`prompt_ids`) and the ids it drew (`completion_ids`, the stop token last only when the sample ended by itself),
and the training sequence is exactly those, through TRL's pre-tokenized path (`input_ids` + `completion_mask`):
the prompt's tokens get label -100, the drawn ones are trained. No chat template is applied again, so nothing
the model did not generate is trained (the paper's own templates would add an empty <think></think>, re-render
the reasoning or trim the text), and a sample cut at max_new_tokens is not taught to stop.

A user's own `{"messages": [..., assistant]}` file without ids is trained from text: TRL renders each row with the
tokenizer's chat template as a conversational prompt-completion example (`prompt` = the context, `completion` =
the assistant turn, loss on the completion and the end-of-turn the template closes it with), and the rows the
template renders differently from the sampler's context + output are counted and warned about.

Full fine-tuning or LoRA (PEFT) by config; gradient accumulation reaches the effective batch;
checkpoints resume; loss, LR and tokens/s go to the console and TensorBoard. The final model is saved as a
plain transformers directory (LoRA merged by default) that transformers and vLLM load as is.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from .config import SSDConfig, identity, reads, to_dict
from .io import InputError, fingerprint_path, output_dir, read_jsonl, remove_path, replace_path
from .stage import Stage

log = logging.getLogger(__name__)


def _ids(where: str, rec: dict, name: str) -> list[int]:
    ids = rec.get(name)
    if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
        raise InputError(f"{where}: field '{name}' must be a list of token ids (non-negative integers)")
    return ids


def read_train_rows(path: str | Path) -> list[dict]:
    """train.jsonl -> one row per line, every line checked: `{"messages": [..., assistant]}` (the context, then the
    sample) and, in a token-exact file (`ssd filter` writes one), `prompt_ids` and `completion_ids`. A file is
    one kind or the other. Each row is returned as {"where", "messages", "prompt_ids", "completion_ids",
    "finish_reason", "prompt_id", "sample_index"} (ids None in a text file; the last three None where absent)."""
    rows, exact = [], None
    for lineno, rec in read_jsonl(path):
        where = f"{path}:{lineno}"
        msgs = rec.get("messages")
        if not isinstance(msgs, list) or len(msgs) < 2 or not all(isinstance(m, dict) for m in msgs):
            raise InputError(f"{where}: field 'messages' must be a list of chat messages: the context, then the assistant's sample")
        for i, m in enumerate(msgs):
            want = ("assistant",) if i == len(msgs) - 1 else ("system", "user", "assistant") if i == 0 else ("user", "assistant")
            if m.get("role") not in want:
                raise InputError(f"{where}: field 'messages[{i}].role' must be {' or '.join(map(repr, want))}, got {m.get('role')!r}")
            if not isinstance(m.get("content"), str):
                raise InputError(f"{where}: field 'messages[{i}].content' must be a string")
        has_ids = "prompt_ids" in rec or "completion_ids" in rec
        if exact is None:
            exact = has_ids
        elif has_ids != exact:
            kind = "token ids" if exact else "no token ids"
            raise InputError(f"{where}: field 'prompt_ids'/'completion_ids': the rows before this one have {kind}; a "
                             "training file is token-exact (every row has prompt_ids and completion_ids) or text (none has)")
        row = {"where": where, "messages": [{"role": m["role"], "content": m["content"]} for m in msgs],
               "prompt_ids": None, "completion_ids": None, "finish_reason": rec.get("finish_reason"),
               "prompt_id": rec.get("prompt_id"), "sample_index": rec.get("sample_index")}
        if has_ids:
            row["prompt_ids"], row["completion_ids"] = _ids(where, rec, "prompt_ids"), _ids(where, rec, "completion_ids")
            if not row["completion_ids"]:
                raise InputError(f"{where}: field 'completion_ids' is empty: nothing to train on")
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no training examples")
    return rows


def token_rows(tokenizer, rows: list[dict], vocab_size: int, where: str) -> tuple[list[dict], dict]:
    """Token-exact examples for TRL's pre-tokenized path: `input_ids` = the ids the sampler fed the model, then the
    ids it drew (the stop token last only when it stopped by itself); `completion_mask` 1 on the drawn ids, so
    the loss is on the sample alone. Each row's ids are checked against its text: the drawn ids must decode to
    the assistant message (else they came from another tokenizer, or the text was edited) and lie in the model's
    vocabulary. A context whose ids are not this tokenizer's rendering of its messages (another chat template when
    sampling) is trained as sampled, counted and warned about."""
    from .chat import decode, render

    out, context_differs, example = [], 0, None
    for row in rows:
        p, c = row["prompt_ids"], row["completion_ids"]
        big = max(p + c)
        if big >= vocab_size:
            raise InputError(f"{row['where']}: token id {big} is outside the model's vocabulary ({vocab_size} ids): "
                             "sampled with another model?")
        body = c[:-1] if row["finish_reason"] == "stop" else c
        if decode(tokenizer, body) != row["messages"][-1]["content"]:
            raise InputError(f"{row['where']}: field 'completion_ids' does not decode to the assistant message: ids from "
                             "another tokenizer, or an edited text (drop prompt_ids/completion_ids from every row to train "
                             "on the text)")
        if tokenizer.decode(p, skip_special_tokens=False, clean_up_tokenization_spaces=False) != render(tokenizer, row["messages"][:-1]):
            context_differs += 1
            example = example or row["where"]
        out.append({"input_ids": p + c, "completion_mask": [0] * len(p) + [1] * len(c)})
    if context_differs:
        log.warning("WARNING: %s: %d of %d rows' context ids are not this tokenizer's chat-template rendering of their "
                    "messages (first: %s; sampled with another model.chat_template?); they are trained as sampled",
                    where, context_differs, len(rows), example)
    ended = sum(r["finish_reason"] == "stop" for r in rows)
    return out, {"rows": len(rows), "token_exact": len(rows), "context_differs_from_template": context_differs,
                 "rows_ending_in_stop_token": ended}


def check_rendering(tokenizer, rows: list[dict], where: str, warn: bool = True) -> dict:
    """Whether the chat template renders each row as the sampler's context followed by the sample itself, token
    for token.

    Training from text sees the tokens of template(context + [assistant]); sampling fed the model the tokens of
    template(context, generation prompt) and then drew the output. They agree when the first is the second, then
    the output, then the end-of-turn the template closes every assistant turn with, as text and as tokens. The
    paper's own templates break that: Qwen3-Instruct-2507 writes an empty <think></think> before the assistant
    turn, Qwen3-Thinking-2507 re-renders the reasoning (an unclosed one gets an empty block first), Llama 3.1 trims
    the text; and a sample that starts with "\n" merges with the generation prompt's last "\n" into one token in
    any ChatML template. Such rows are counted, in the manifest, with a warning when they are what is trained
    (`warn`)."""
    from .chat import encode, render

    differ, example = 0, None
    for i, row in enumerate(rows):
        msgs = row["messages"]
        context, output = render(tokenizer, msgs[:-1]), msgs[-1]["content"]
        full = tokenizer.apply_chat_template(msgs, tokenize=False)
        ctx, out, whole = encode(tokenizer, [context, output, full])
        # what the template closes an assistant turn with (Qwen's "<|im_end|>\n"), from a turn it cannot rewrite
        mark = "SSD-SAMPLE-7f3a"
        probe = tokenizer.apply_chat_template(msgs[:-1] + [{"role": "assistant", "content": mark}], tokenize=False)
        closing = probe.split(mark, 1)[1] if mark in probe else None
        as_text = full == context + output + closing if closing is not None else full.startswith(context + output)
        if as_text and whole[: len(ctx)] == ctx and whole[len(ctx) : len(ctx) + len(out)] == out:
            continue
        differ += 1
        if example is None:
            cut = next((j for j, (a, b) in enumerate(zip(ctx + out, whole)) if a != b), min(len(ctx + out), len(whole)))
            example = {"row": i + 1, "sampled": tokenizer.decode((ctx + out)[cut : cut + 30]),
                       "trained": tokenizer.decode(whole[cut : cut + 30])}
    if differ and warn:
        log.warning("WARNING: %s: the chat template renders %d of %d rows differently from what was sampled (row %d: "
                    "sampled %r, trained on %r); the model is trained on tokens it did not generate. `ssd filter` "
                    "writes token-exact rows from `ssd sample`'s records, which avoid this",
                    where, differ, len(rows), example["row"], example["sampled"], example["trained"])
    return {"rows": len(rows), "rendered_as_sampled": len(rows) - differ, "rendered_differently": differ,
            "first_difference": example}


def training_examples(tokenizer, rows: list[dict], vocab_size: int, where: str) -> tuple[list[dict], dict]:
    """What TRL trains on, and how it relates to what was sampled (the manifest's `examples`): token-exact rows
    as they are (`token_rows`); text rows as TRL's conversational prompt-completion examples, which TRL renders with
    the chat template (`check_rendering` counts the rows that then differ from what was sampled)."""
    if rows[0]["prompt_ids"] is not None:
        examples, info = token_rows(tokenizer, rows, vocab_size, where)
        # what rendering the text again would have done, for the record (it is not what is trained)
        info["template_would_render_differently"] = check_rendering(tokenizer, rows, where, warn=False)["rendered_differently"]
        return examples, {"mode": "token_exact", **info}
    rendering = check_rendering(tokenizer, rows, where)
    examples = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]
    return examples, {"mode": "chat_template", "rows": len(rows), "token_exact": 0, **rendering}


def _precision(name: str) -> tuple[bool, bool]:
    """(bf16, fp16) for SFTConfig."""
    import torch

    if name == "auto":
        return (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), False
    if name in ("bf16", "fp16") and not torch.cuda.is_available():
        raise InputError(f"config key 'train.precision': {name} needs a GPU here; use auto or fp32")
    return name == "bf16", name == "fp16"


def prepare_examples(cfg: SSDConfig, train_file: str | Path) -> tuple:
    """(tokenizer, TRL examples, what they are): train.jsonl read and every row checked, before anything is written."""
    from .models import load_tokenizer, vocab_size

    rows = read_train_rows(train_file)
    tokenizer = load_tokenizer(cfg.model)
    examples, info = training_examples(tokenizer, rows, vocab_size(cfg.model), str(train_file))
    return tokenizer, examples, info


def build_trainer(cfg: SSDConfig, train_file: str | Path, out_dir: str | Path, progress: bool = True,
                  prepared: tuple | None = None):
    """The configured SFTTrainer (not yet trained), its tokenizer, the accumulation steps used, and what it trains
    on (`training_examples`). `prepared`: `prepare_examples`' result, when the caller has it already."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from . import trackers
    from .progress import interactive

    t = cfg.train
    _check_optional_kernels(t)
    trackers.check_installed(cfg)
    tokenizer, examples, info = prepared or prepare_examples(cfg, train_file)
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
        report_to=trackers.trackers(cfg) or "none",
        run_name=trackers.run_name(cfg, out_dir),
        project=trackers.trackio_project(),
        seed=t.seed,
        # a bar that redraws in a terminal; elsewhere (a log file, a pipe) a line per logged step (_log_lines_class)
        disable_tqdm=not (progress and interactive()),
        # train.weights_dtype decides the weights' dtype (float32 master weights for full fine-tuning)
        model_init_kwargs=_model_init_kwargs(cfg),
        use_liger_kernel=t.use_liger_kernel,
        # transformers' own count (prompt and sample tokens, padding excluded) is saved in every checkpoint, so a
        # resumed run reports the tokens of the whole training (TRL's counter restarts from zero)
        include_num_input_tokens_seen="non_padding",
        # token-exact examples come tokenized, with their completion mask: the loss is on the sample only
        completion_only_loss=True if info["mode"] == "token_exact" else None,
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
            target_parameters=t.lora.target_parameters or None,
        )
    trainer = _trainer_class()(
        model=cfg.model.name_or_path,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.base_model, trainer.base_model_id = cfg.model.name_or_path, hub_model_id_of(cfg.model.name_or_path)
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(out_dir / "tensorboard")
    if args.disable_tqdm:  # transformers then prints each log as a dict; ours says the step and what it means
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(_log_lines_class()())
    return trainer, tokenizer, accum, info


def trl_command(cfg: SSDConfig, dataset: str, output_dir: str = "ssd-model", model: str | None = None,
                here: bool = False) -> list[str]:
    """The `trl sft` command line that trains as `build_trainer` does, on a dataset `ssd export` wrote (its
    pre-tokenized input_ids, the loss on completion_mask: TRL takes a dataset with prompt and completion columns as
    completion-only): the same hyperparameters, weights' dtype and (on one process) accumulation. train.precision
    auto is TRL's default (bf16) unless `here`: then it is resolved for this machine, as `ssd train` does."""
    t = cfg.train
    args = ["trl", "sft", "--model_name_or_path", model or cfg.model.name_or_path, "--dataset_name", str(dataset),
            "--output_dir", output_dir, "--learning_rate", f"{t.learning_rate:g}", "--lr_scheduler_type", t.lr_scheduler,
            "--warmup_steps", f"{t.warmup_ratio:g}", "--optim", t.optimizer, "--weight_decay", f"{t.weight_decay:g}",
            "--per_device_train_batch_size", str(t.per_device_batch_size),
            "--gradient_accumulation_steps", str(t.effective_batch_size // t.per_device_batch_size),
            "--num_train_epochs", f"{t.epochs:g}", "--max_steps", str(t.max_steps), "--max_length", str(t.max_seq_length),
            "--packing", str(t.packing), "--gradient_checkpointing", str(t.gradient_checkpointing),
            "--seed", str(t.seed), "--logging_steps", str(t.logging_steps), "--dtype", str(weights_dtype(cfg)).removeprefix("torch.")]
    if here:
        import torch

        bf16, fp16 = _precision(t.precision)
        args += ["--bf16", str(bf16), "--fp16", str(fp16)] + ([] if torch.cuda.is_available() else ["--use_cpu", "True"])
    elif t.precision != "auto":
        args += ["--bf16", str(t.precision == "bf16"), "--fp16", str(t.precision == "fp16")]
    if t.lora.enabled:
        args += ["--use_peft", "--lora_r", str(t.lora.r), "--lora_alpha", str(t.lora.alpha),
                 "--lora_dropout", f"{t.lora.dropout:g}", "--lora_target_modules", *t.lora.target_modules]
    return args


def hub_model_id_of(name_or_path: str) -> str | None:
    """The Hub id of a base model: itself when it is one, the repo of a Hugging Face cache snapshot
    (.../models--ORG--NAME/snapshots/REV), else None (a local model of unknown origin)."""
    from .config import HUB_REPO_ID

    path = Path(name_or_path)
    if not path.exists():
        return name_or_path if HUB_REPO_ID.fullmatch(name_or_path) else None
    for part in path.resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def lora_targets(model) -> dict:
    """Which modules and parameters LoRA adapts, by kind: attention projections, dense MLP, experts, the MoE router,
    other. PEFT's "all-linear" takes every nn.Linear but the head; in transformers 5 a mixture-of-experts layer keeps
    its experts as fused 3-D parameters and its router as its own module, neither an nn.Linear, so on Qwen3-MoE
    "all-linear" adapts the attention alone; `train.lora.target_parameters` adds the experts (PEFT's
    target_parameters)."""
    names = sorted(set(getattr(model, "targeted_module_names", None) or [])
                   | set(getattr(model, "targeted_parameter_names", None) or []))
    kinds: dict[str, list[str]] = {"attention": [], "mlp": [], "experts": [], "router": [], "other": []}
    for n in names:
        kind = ("experts" if ".experts" in n else "router" if ".mlp.gate" in n and ".mlp.gate_proj" not in n
                else "attention" if ".self_attn." in n else "mlp" if ".mlp." in n else "other")
        kinds[kind].append(n)
    layer = [n.split(".layers.", 1)[-1].split(".", 1)[-1] if ".layers." in n else n for n in names]
    return {"modules": len(names), "by_kind": {k: len(v) for k, v in kinds.items()}, "names": sorted(set(layer))}


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


def _log_lines_class():
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        """One line per logged step, for a log file: `train: step 5/44 (11%) loss 0.1041 lr 1.00e-04 ...`."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if isinstance(logs.get("train_loss"), (int, float)):  # the end of training
                print(f"train: done, {state.global_step} steps, mean loss {logs['train_loss']:.4f}, "
                      f"{logs.get('train_runtime', 0):.0f} s", flush=True)
                return
            shown = {"loss": "loss {:.4f}", "grad_norm": "grad_norm {:.3g}", "learning_rate": "lr {:.2e}",
                     "tokens_per_second": "{:.0f} tok/s"}
            parts = [fmt.format(logs[k]) for k, fmt in shown.items() if isinstance(logs.get(k), (int, float))]
            if parts:
                pct = f" ({100 * state.global_step / state.max_steps:.0f}%)" if state.max_steps else ""
                print(f"train: step {state.global_step}/{state.max_steps}{pct} " + " ".join(parts), flush=True)

    return LogLines


def _trainer_class():
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class _LogLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

    class SSDTrainer(SFTTrainer):
        """SFTTrainer that logs training tokens per second, always logs the last step (so the final loss is the
        last step's, not the last multiple of logging_steps), and names the base model in the model card it writes
        into each checkpoint (TRL names it only when the model was loaded by a Hub id)."""

        base_model: str = ""  # cfg.model.name_or_path
        base_model_id: str | None = None  # its Hub id, when it has one (`hub_model_id_of`)

        def create_model_card(self, model_name=None, dataset_name=None, tags=None):
            model_name = self.args.run_name or model_name  # (TRL's: the checkpoints directory's name)
            super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=["simplesd", "ssd", *(tags or [])])
            if not self.is_world_process_zero():
                return
            from huggingface_hub import ModelCard

            path = Path(self.args.output_dir) / "README.md"
            card = ModelCard.load(path)
            hub = self.base_model_id
            card.data.base_model = hub
            card.text = card.text.replace("[None](https://huggingface.co/None)", f"[{hub}](https://huggingface.co/{hub})"
                                          if hub else f"`{self.base_model}` (a local model)")
            card.save(path)

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
    return {"model": to_dict(cfg.model), "train": identity(cfg.train, "train")}, inputs


TRAIN_WORK = ("checkpoints", "model", "adapter", ".model.tmp")
TRAIN_BOOKKEEPING = ("tensorboard", "log_history.json")


@reads("model", "train")
def train(cfg: SSDConfig, train_file: str | Path, out_dir: str | Path, *, progress: bool = True,
          overwrite: bool = False, push: bool = True) -> dict | None:
    """Fine-tunes cfg.model on train_file; writes out_dir/model (loadable as is), checkpoints, TensorBoard logs.
    Resumes from the last checkpoint; a directory holding checkpoints or a model of another config or other inputs
    is refused unless `overwrite`. With train.push_to_hub (and `push`: `ssd run` pushes after evaluating), the
    model goes to train.hub_model_id with its card (`share.push`).

    Returns the manifest; under a multi-process launch (torchrun / accelerate launch) only the main process
    writes files and gets it, the others get None."""
    from transformers.trainer_utils import get_last_checkpoint

    from . import trackers
    from .models import check_model_files, peak_gpu_memory_gb

    out_dir = output_dir(out_dir)
    train_file = Path(train_file)
    if not train_file.is_file():
        raise InputError(f"{train_file}: training file not found (run `ssd filter` first)")
    config, inputs = train_identity(cfg, train_file)
    st = Stage("train", out_dir, config, inputs, work=TRAIN_WORK, bookkeeping=TRAIN_BOOKKEEPING)
    if st.finished():
        _push(cfg, out_dir, push)
        return st.manifest
    check_model_files(cfg.model)
    _check_optional_kernels(cfg.train)
    trackers.check_installed(cfg)
    if push:
        from .share import check_can_push

        check_can_push(cfg)
    prepared = prepare_examples(cfg, train_file)  # every row checked before anything is written
    ckpt_dir = out_dir / "checkpoints"
    # one process claims the directory; the others get the same answer without touching it
    st.claim(overwrite, write=int(os.environ.get("RANK", "0")) == 0)

    trainer, tokenizer, accum, examples = build_trainer(cfg, train_file, out_dir, progress, prepared)
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
        "token_exact_rows": examples["token_exact"],
        # rows trained on text the model did not generate (text rows the chat template rewrote; 0 when token-exact)
        "rows_rendered_differently": examples.get("rendered_differently", 0),
    }
    st.write_json("log_history.json", trainer.state.log_history)
    manifest = st.finish(
        counts, outputs=["model", "log_history.json"] + (["adapter"] if cfg.train.lora.enabled else []),
        seeds={"train.seed": cfg.train.seed},
        extra={"resumed_from": last, "precision": cfg.train.precision,
               "weights_dtype": str(weights_dtype(cfg)).removeprefix("torch."),
               "distributed": str(trainer.accelerator.distributed_type).removeprefix("DistributedType."),
               "fsdp": bool(trainer.is_fsdp_enabled), "deepspeed": bool(trainer.is_deepspeed_enabled),
               "peak_gpu_memory_gb": peak_gpu_memory_gb(), "examples": examples,
               "trackers": trackers.runs_of(cfg, out_dir),
               "lora_targets": lora_targets(trainer.model) if cfg.train.lora.enabled else None},
    )
    _push(cfg, out_dir, push)
    return manifest


def _push(cfg: SSDConfig, out_dir: Path, push: bool) -> None:
    if push and cfg.train.push_to_hub:
        from .share import push_configured

        push_configured(cfg, out_dir)
