"""One config object with the paper's defaults in one place.

`SSDConfig` is loaded from YAML (optional) and then from `key.sub=value` overrides, in that order. Unknown
keys and values of the wrong type are `InputError`s naming the key. Every field carries a help text, which
the CLI prints, so `ssd config show` and `ssd <stage> --help` document every option.

Paper defaults (Zhang et al. 2026, "Embarrassingly Simple Self-Distillation Improves Code Generation"):
sample at T_train 1.5 with top-k 20 and top-p 0.8, one sample per prompt; drop empty outputs and the
shortest 10 %; SFT with AdamW, cosine schedule, peak LR 5e-6, batch 32; decode at a separately tuned T_eval.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .io import InputError


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


DECODING_KEYS = ("temperature", "top_k", "top_p", "min_p", "n", "max_new_tokens", "seed", "decoding",
                 "control_temperature", "control_top_k", "control_top_p")
DECODINGS = ("plain", "ssd_equivalent")
TRACKERS = ("tensorboard", "wandb", "trackio", "none")  # train.report_to, as transformers names them
HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # NAMESPACE/NAME (the Hub checks the rest)
CONTROL_HELP = ("plain: temperature, then top-k, top-p, min-p, as set here. ssd_equivalent: the no-training control "
                "(README, Evaluation: SSD against a decoding rule): what a model that learned SSD's training "
                "distribution exactly would sample at this temperature: the logits divided by control_temperature x "
                "temperature, restricted to the tokens sampling at control_temperature / control_top_k / control_top_p "
                "could draw, then this section's top-k, top-p, min-p. Its greedy is plain greedy (the top token is "
                "always in that support).")


@dataclass(frozen=True)
class Decoding:
    """What samples are drawn from and how many: the keys `sample.*` (T_train) and `eval.*` (T_eval) share, read
    by both sampling backends. Greedy is temperature 0; evaluating it draws one sample per problem (`at`), since
    every draw would be the same sequence, and the backends switch truncation off for it."""

    temperature: float
    top_k: int
    top_p: float
    min_p: float
    n: int
    max_new_tokens: int
    seed: int
    decoding: str = "plain"
    # ssd_equivalent: the training sampling it mirrors (resolved: never null then)
    control_temperature: float | None = None
    control_top_k: int | None = None
    control_top_p: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def control(self) -> tuple[float, int, float] | None:
        """(T_train, top-k, top-p) whose support the ssd_equivalent control keeps, or None (plain decoding)."""
        if self.decoding != "ssd_equivalent":
            return None
        return self.control_temperature, self.control_top_k, self.control_top_p

    @classmethod
    def of(cls, section: Any, mirror: Any = None) -> Decoding:
        """The decoding keys of a config section (SampleConfig or EvalConfig). The control's null settings are
        those of `mirror` (the config's sample section: the training sampling it mirrors); plain decoding
        carries none."""
        values = {k: getattr(section, k) for k in DECODING_KEYS}
        mirror = mirror if mirror is not None else section
        for key in ("temperature", "top_k", "top_p"):
            if values["decoding"] != "ssd_equivalent":
                values[f"control_{key}"] = None
            elif values[f"control_{key}"] is None:
                values[f"control_{key}"] = getattr(mirror, key)
        return cls(**values)

    def at(self, temperature: float) -> Decoding:
        """The same decoding at another temperature: what one T_eval of a sweep samples with."""
        d = dataclasses.replace(self, temperature=temperature)
        # greedy: one sample, and plain greedy even under the control (its argmax is the base's: tested), so a
        # greedy evaluation of the control is the base's
        return dataclasses.replace(d, n=1, decoding="plain", control_temperature=None, control_top_k=None,
                                   control_top_p=None) if d.greedy else d


@dataclass
class ModelConfig:
    name_or_path: str = _f("", "Hugging Face hub id or local directory of the causal LM to self-distil.")
    revision: str | None = _f(None, "Hub revision (branch, tag or commit) of the model.")
    trust_remote_code: bool = _f(False, "Allow model repositories that ship their own Python code.")
    dtype: str = _f("auto", "Weights dtype: auto (bf16 on GPUs that have it, else float32), bfloat16, float16, float32.")
    chat_template: str | None = _f(None, "Path to a Jinja chat template replacing the tokenizer's own (sampling and training both use it).")
    attn_implementation: str | None = _f(None, "transformers attention kernel: null (its default, sdpa), eager, sdpa, flash_attention_2, or a kernels-hub name such as kernels-community/flash-attn. Packed training without cross-sample attention is cheapest with a flash kernel.")


@dataclass
class PromptsConfig:
    path: str = _f("", "Problem file (.jsonl, .jsonl.gz, .parquet) or a `datasets` hub id.")
    split: str = _f("train", "Split to load when `path` is a hub id.")
    subset: str | None = _f(None, "Dataset configuration (subset) name when `path` is a hub id, e.g. seed_sft for microsoft/rStar-Coder.")
    format: str = _f("auto", "Record format: auto, rstar (question, starter_code), livecodebench (question_content, starter_code), humaneval (prompt, entry_point), messages (chat rows: the conversation before the answer, ending with a user turn).")
    fields: dict[str, str] = _f({}, "Your records' own field names for ours: prompts.fields.question=problem reads the question from field 'problem' (ours: id, question, starter_code, messages).")
    system_prompt: str | None = _f(None, "A system message before every user turn, in sampling and evaluation alike (chat rows that have their own keep it). null = none, as in the paper.")
    dedup: bool = _f(True, "Drop repeated problems: the same statement (question + starter code) exactly, or after lower-casing and collapsing whitespace (punctuation is kept: on code it is content); the first is kept.")
    shuffle: bool = _f(True, "Order the problems by a seeded hash of their id before offset and max_prompts, so a cap takes a random subset that stays the same when the file grows or is reordered. false = file order.")
    seed: int = _f(0, "Seed of that shuffle.")
    max_prompts: int | None = _f(None, "Use only the first N problems (after dedup, decontamination and the shuffle).")
    offset: int = _f(0, "Skip the first N problems (before max_prompts): a later slice of the same order (`pipeline.round_prompts=fresh` moves it each round).")
    decontaminate: bool = _f(True, "Drop problems that overlap a benchmark problem: the one eval.benchmark evaluates on (its selection) and those in prompts.decontaminate_against. The sample directory's prompts.json lists them.")
    decontaminate_against: list[str] = _f([], "More benchmarks to check the problems against, each BENCH:PATH (humaneval:FILE, mbpp:FILE, livecodebench:FILE, ... any eval.benchmark), every problem in the file.")
    keep_contaminated: bool = _f(False, "Keep flagged problems anyway (a warning says how many; the counts stay in the manifest and report).")
    ngram: int = _f(13, "Decontamination: a problem is flagged when it shares a run of this many words (lower-cased, punctuation and whitespace collapsed) with a benchmark problem, or equals one after that normalisation.")
    ngram_common: int = _f(5, "Decontamination: word n-grams found in this many benchmark problems or more, or in this many training problems or more, are boilerplate (e.g. AtCoder's 'the input is given from standard input in the following format', a common constraints line), not evidence. 0 = count every n-gram.")


@dataclass
class SampleConfig:
    backend: str = _f("transformers", "Sampling engine: transformers (CPU/GPU, batched generate) or vllm (offline LLM.generate; pip install 'simplesd[vllm]'). Same distribution, same output.")
    temperature: float = _f(1.5, "T_train. Applied first; the truncations below act on the tempered distribution. 0 = greedy.")
    top_k: int = _f(20, "Keep the k most likely tokens (0 = off). Applied after temperature.")
    top_p: float = _f(0.8, "Keep the smallest set of tokens whose tempered probability reaches p (1.0 = off). After top-k.")
    min_p: float = _f(0.0, "Drop tokens whose probability is below min_p x the top token's (0 = off). Last.")
    n: int = _f(1, "Samples per prompt (paper: 1).")
    max_new_tokens: int = _f(4096, "Generation cap per sample (paper: 65536). Hitting it gives finish_reason=length.")
    seed: int = _f(0, "Sampling seed: each sample draws from its own random stream, seeded from (this seed, prompt id, sample index), so a sample does not depend on its batch, shard, replica or a resume.")
    decoding: str = _f("plain", CONTROL_HELP)
    control_temperature: float | None = _f(None, "decoding=ssd_equivalent: the T_train whose support it keeps; null = this section's temperature.")
    control_top_k: int | None = _f(None, "decoding=ssd_equivalent: the top-k of that support (0 = off); null = this section's top_k.")
    control_top_p: float | None = _f(None, "decoding=ssd_equivalent: the top-p of that support (1.0 = off); null = this section's top_p.")
    batch_size: int = _f(8, "Prompts per generate() call (each expands to n sequences). Prompts are length-bucketed.")
    shard_size: int = _f(64, "Prompts per output shard: the unit that is written atomically and resumed.")
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N.")
    data_parallel_size: int = _f(1, "Model replicas sampling at once, each a `ssd sample --worker I/N` process on its own tensor_parallel_size x pipeline_parallel_size GPUs, each taking every N-th shard (either backend).")
    tensor_parallel_size: int = _f(1, "vllm: GPUs one replica's layers are split across (tensor parallel).")
    pipeline_parallel_size: int = _f(1, "vllm: pipeline stages per replica (e.g. one per node with distributed_executor_backend=ray).")
    distributed_executor_backend: str = _f("", "vllm: '' (vLLM's default: processes on this node), mp, or ray (a replica spanning several nodes of a running Ray cluster).")
    gpu_memory_utilization: float | None = _f(None, "vllm: share of each GPU's memory (on CPU builds: of RAM) vLLM reserves for weights and KV cache; null = 0.9 on GPUs, 0.3 on CPU.")
    max_model_len: int | None = _f(None, "vllm: context length to reserve; null = the longest prompt + max_new_tokens.")

    def to_decoding(self) -> Decoding:
        return Decoding.of(self)


@dataclass
class FilterConfig:
    drop_empty: bool = _f(True, "Drop samples whose output is empty or whitespace.")
    drop_shortest_fraction: float = _f(0.1, "Drop this fraction of the remaining samples, shortest (in output tokens) first.")
    require_code_block: bool = _f(False, "Drop samples without a fenced code block the grader would run (flag has_code; off in the paper).")
    drop_truncated: bool = _f(False, "Drop samples that hit sample.max_new_tokens without ending (flag truncated; the paper kept them).")
    drop_looping: bool = _f(False, "Drop samples that end in a repeated unit (flag looping; the paper kept them).")
    require_think: bool = _f(False, "Drop samples without a reasoning block, <think> or </think> (flag has_think): a Thinking model's sample cut off before it finished reasoning. Off in the paper.")
    dedup: bool = _f(False, "Drop exact duplicate (prompt, output) pairs, keeping the first.")
    holdout_fraction: float = _f(0.02, "Not in the paper: set aside this fraction of the kept prompts (at least one, seeded by prompt id) in heldout.jsonl, untrained, for `ssd analyze`. 0 = train on every kept sample.")


@dataclass
class LoraConfig:
    enabled: bool = _f(False, "Train LoRA adapters (PEFT) instead of all weights.")
    r: int = _f(64, "LoRA rank.")
    alpha: int = _f(128, "LoRA alpha (scaling = alpha / r).")
    dropout: float = _f(0.05, "Dropout on the LoRA branch.")
    target_modules: list[str] = _f(["all-linear"], "Modules to adapt (PEFT names; 'all-linear' = every linear but the head: on a transformers-5 mixture-of-experts model, the attention only, as its experts are fused parameters). The train manifest's lora_targets lists what was adapted.")
    target_parameters: list[str] = _f([], "Parameters to adapt besides (PEFT target_parameters), e.g. a MoE's fused experts: mlp.experts.gate_up_proj,mlp.experts.down_proj.")
    merge: bool = _f(True, "Merge adapters into the weights when saving, so transformers and vLLM load the model as is (the base is reloaded unquantized in model.dtype and the adapter merged into it).")
    load_in_4bit: bool = _f(False, "QLoRA: load the frozen base in 4-bit NF4 (bitsandbytes, double quantization, compute in bf16 on GPUs) and train LoRA adapters on it.")


@dataclass
class TrainConfig:
    learning_rate: float = _f(5e-6, "Peak learning rate (paper: 5e-6).")
    lr_scheduler: str = _f("cosine", "transformers scheduler name (paper: cosine).")
    warmup_ratio: float = _f(0.03, "Fraction of the steps spent warming up linearly to the peak LR.")
    optimizer: str = _f("adamw_torch", "transformers optimizer name (paper: AdamW).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    effective_batch_size: int = _f(32, "Sequences per optimizer step over all devices (paper: 32); reached by gradient accumulation.")
    per_device_batch_size: int = _f(1, "Sequences per device per forward pass.")
    epochs: float = _f(1.0, "Passes over the filtered samples.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = use epochs).")
    max_seq_length: int = _f(8192, "Longest training sequence in tokens (prompt + sample); longer ones are truncated.")
    packing: bool = _f(False, "Pack sequences into max_seq_length rows without cross-sample attention (TRL BFD packing).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass to save memory (needed for 16K-64K-token samples).")
    use_liger_kernel: bool = _f(False, "Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU, chunked cross-entropy that never holds full-vocabulary logits): less memory at long sequence lengths. CUDA GPUs; pip install liger-kernel.")
    precision: str = _f("auto", "Compute precision (autocast): auto (bf16 where the hardware has it, else fp32), bf16, fp16, fp32.")
    weights_dtype: str = _f("auto", "dtype of the weights being trained: auto = float32 for full fine-tuning (master weights: at the paper's LR 5e-6 an AdamW step is ~5e-6, below half of bf16's spacing for typical weights, so bf16 weights would not move) and model.dtype for LoRA's frozen base (PEFT keeps adapters in float32); or float32, bfloat16.")
    save_steps: int = _f(200, "Write a resumable checkpoint every N optimizer steps.")
    save_total_limit: int = _f(2, "Checkpoints to keep.")
    logging_steps: int = _f(1, "Log loss, LR and tokens/s every N steps (console and TensorBoard).")
    seed: int = _f(0, "Training seed (data order, dropout, LoRA init).")
    report_to: list[str] = _f(["tensorboard"], "Experiment trackers, as TRL/transformers name them: tensorboard (into OUT/train/tensorboard), wandb, trackio, several (tensorboard,wandb), or none. Training logs go there through transformers' own callbacks; `ssd run` adds the evaluation and analysis summaries to the same run. wandb reads WANDB_PROJECT/WANDB_ENTITY/WANDB_MODE, trackio TRACKIO_PROJECT/TRACKIO_SPACE_ID.")
    run_name: str = _f("", "The trackers' run name (TRL's run_name); empty = the output directory's name.")
    push_to_hub: bool = _f(False, "After `ssd train` (the model) or `ssd run` (the model, then the SSD dataset), upload to the Hugging Face Hub with model and dataset cards (`ssd push` does it for a finished run). Needs train.hub_model_id and a token (HF_TOKEN or `hf auth login`).")
    hub_model_id: str = _f("", "The Hub model repo train.push_to_hub uploads to (USER/NAME or ORG/NAME), created when missing.")
    hub_dataset_id: str = _f("", "The Hub dataset repo for the SSD samples; empty = hub_model_id + '-samples'.")
    hub_private_repo: bool = _f(False, "Create the Hub repos private (an existing repo keeps its visibility).")
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA / PEFT settings."})


@dataclass
class EvalConfig:
    benchmark: str = _f("", "humaneval, humaneval+, mbpp, mbpp+, livecodebench, codecontests or custom (your own tests, README, Evaluation: Your own tests); empty = `ssd run` stops after training.")
    problems: str = _f("", "Benchmark file (JSONL(.gz) or a JSON list: HumanEval, EvalPlus's HumanEvalPlus/MbppPlus, MBPP or sanitized MBPP, LiveCodeBench code_generation_lite, CodeContests, your own tests) or its hub id (livecodebench/code_generation_lite, evalplus/humanevalplus, evalplus/mbppplus, google-research-datasets/mbpp[:sanitized], deepmind/code_contests).")
    mbpp_split: str = _f("test", "MBPP: the split graded, by task number (Austin et al. 2021): test (11-510, what papers report), validation (511-600), train (601-974), prompt (1-10) or all.")
    max_problems: int | None = _f(None, "Grade only the first N selected problems (a quick look); null = all.")
    task_ids: list[str] = _f([], "Grade only these problems (ids as the benchmark names them); empty = all selected.")
    start_month: str | None = _f("2025-02", "LiveCodeBench: first contest month (YYYY-MM) selected; the paper's v6 window starts 2025-02.")
    end_month: str | None = _f("2025-05", "LiveCodeBench: last contest month selected (inclusive); the paper's window ends 2025-05.")
    difficulties: list[str] = _f([], "LiveCodeBench difficulties to keep (easy, medium, hard); empty = all.")
    timeout: float | None = _f(None, "Seconds per test (LiveCodeBench, CodeContests, your stdin/call tests; default 6, as the paper's runner), per program (HumanEval, MBPP, a check function; default 3) or the least per input (HumanEval+/MBPP+; default 1, and 4x the canonical solution's time when longer, as EvalPlus).")
    early_exit: bool = _f(True, "Stop a program's tests at its first failure (the reference does).")
    extraction: str = _f("official", "How code is taken from a response: official (lcb_runner's: the lines between the last two lines holding a fence) or lenient (the last well-formed ```lang block).")
    workers: int | None = _f(None, "Grading processes (default: one per available core).")
    memory_mb: int = _f(4096, "Address-space limit per program, MB.")
    temperature: float = _f(0.6, "T_eval, tuned separately from T_train (ml-ssd's default is 0.6).")
    temperatures: list[float] = _f([], "T_eval values to sweep; empty = just `temperature`.")
    top_k: int = _f(20, "top-k at evaluation (0 = off).")
    top_p: float = _f(0.95, "top-p at evaluation (1.0 = off).")
    min_p: float = _f(0.0, "min-p at evaluation (0 = off).")
    n: int = _f(10, "Samples per problem for pass@k.")
    max_new_tokens: int = _f(4096, "Generation cap per evaluation sample.")
    seed: int = _f(1234, "Evaluation sampling seed.")
    decoding: str = _f("plain", CONTROL_HELP)
    control_temperature: float | None = _f(None, "decoding=ssd_equivalent: the T_train whose support it keeps; null = sample.temperature.")
    control_top_k: int | None = _f(None, "decoding=ssd_equivalent: the top-k of that support (0 = off); null = sample.top_k.")
    control_top_p: float | None = _f(None, "decoding=ssd_equivalent: the top-p of that support (1.0 = off); null = sample.top_p.")
    control: bool = _f(True, "`ssd run` and `ssd demo` with a benchmark: evaluate a third arm, the base under decoding=ssd_equivalent mirroring sample.* (or eval.control_*), over the same T_eval sweep, and report SSD - control beside SSD - base. false = base and SSD only.")

    def to_decoding(self, temperature: float | None = None, mirror: Any = None) -> Decoding:
        """The decoding one T_eval samples with (`temperature`, default eval.temperature); the control's null
        settings are `mirror`'s (the config's sample section)."""
        return Decoding.of(self, mirror).at(self.temperature if temperature is None else temperature)


@dataclass
class AnalyzeConfig:
    max_texts: int = _f(64, "Texts teacher-forced (the first N of the texts file).")
    batch_tokens: int = _f(4096, "Padded tokens per forward pass; bounds memory (two models' logits are batch_tokens x vocab).")
    lock_threshold: float = _f(0.8, "A response position is a lock when the base model's top-1 probability (T=1) is at least this (its nucleus at top-p = this value holds one token), else a fork.")
    examples: int = _f(3, "Texts drawn as token strips in tokens.png.")
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N.")


@dataclass
class PipelineConfig:
    rounds: int = _f(1, "Iterative SSD: rounds of sample -> filter -> train -> evaluate, round r sampling from round r-1's model (`ssd run --rounds N`). 1 = the paper.")
    round_prompts: str = _f("same", "same: every round samples the same prompts; fresh: round r takes the r-th slice of prompts.max_prompts problems (prompts.offset moves on).")
    round_init: str = _f("previous", "previous: round r fine-tunes round r-1's model; base: every round fine-tunes the base (on samples from round r-1's model).")
    min_gain: float = _f(0.0, "Stop after a round whose best-vs-best pass@1 gain over the model it sampled from is below this (so also when it falls). Needs eval.benchmark.")


@dataclass
class SSDConfig:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The frozen base model."})
    prompts: PromptsConfig = field(default_factory=PromptsConfig, metadata={"help": "Problems to sample on."})
    sample: SampleConfig = field(default_factory=SampleConfig, metadata={"help": "Step 1: sampling."})
    filter: FilterConfig = field(default_factory=FilterConfig, metadata={"help": "Step 2: filtering."})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "Step 3: fine-tuning."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Step 4: evaluation."})
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig, metadata={"help": "Token analysis of base vs tuned (lock/fork)."})
    pipeline: PipelineConfig = field(default_factory=PipelineConfig, metadata={"help": "Iterative SSD (rounds)."})
    output_dir: str = _f("runs/ssd", "Run directory (one sub-directory per stage).")


def require_config(cfg: Any, function: str) -> SSDConfig:
    """Every stage function takes the whole config first; an old call form gets a TypeError that says so."""
    if not isinstance(cfg, SSDConfig):
        raise TypeError(f"simplesd.{function}(): the first argument is the whole SSDConfig (simplesd.load_config(...) or "
                        f"simplesd.SSDConfig()), got {type(cfg).__name__}; see docs/api.md")
    return cfg


def reads(*sections: str):
    """Declares the config sections a stage function reads: `ssd <command>` accepts overrides of those keys only and
    lists them in its --help. The function is given the whole config first (checked: `require_config`)."""
    def declare(fn):
        @functools.wraps(fn)
        def stage(cfg, *args, **kwargs):
            require_config(cfg, fn.__name__)
            return fn(cfg, *args, **kwargs)

        stage.config_sections = sections
        return stage
    return declare


# ---------------------------------------------------------------------------------------------------------
# Loading, overriding, validating


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Checks `value` against the annotation `tp` and returns it converted (int -> float only)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except InputError as e:
                errors.append(e)
        raise errors[0]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise InputError(f"config key '{key}': expected a mapping (NAME: VALUE, or {key}.NAME=VALUE on the command line), got {value!r}")
        return {str(k): _coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):  # command-line form: a,b,c
            value = [v for v in value.split(",") if v != ""]
            if item is not str:
                value = [yaml.safe_load(v) for v in value]
        if not isinstance(value, list):
            raise InputError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise InputError(f"config key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply_mapping(obj: Any, mapping: dict, prefix: str = "") -> None:
    hints = _hints(type(obj))
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if k not in hints:
            raise InputError(f"unknown config key '{key}'" + _suggest(type(obj), str(k), prefix))
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            if not isinstance(v, dict):
                raise InputError(f"config key '{key}': expected a mapping of {tp.__name__} fields, got {v!r}")
            _apply_mapping(getattr(obj, k), v, key + ".")
        else:
            setattr(obj, k, _coerce(v, tp, key))


def apply_mapping(cfg: SSDConfig, data: dict, where: str = "") -> SSDConfig:
    """Sets every key of a nested mapping (a YAML file's data) on cfg; errors are prefixed with `where`."""
    try:
        _apply_mapping(cfg, data)
    except InputError as e:
        raise InputError(f"{where}: {e}" if where else str(e)) from None
    return cfg


def _suggest(cls, name: str, prefix: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(_hints(cls)), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def parse_override(text: str) -> tuple[str, Any]:
    """'sample.top_p=0.9' -> ('sample.top_p', 0.9). Values are read as YAML scalars ('null' -> None)."""
    if "=" not in text:
        raise InputError(f"override '{text}': expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError:
        value = raw
    return key, (raw, value)


def _field(cfg: SSDConfig, key: str) -> tuple[Any, str, Any]:
    """(the object holding `key`'s field, the field's name, its annotation); unknown keys and sections are
    InputErrors with a suggestion."""
    obj: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        hints = _hints(type(obj))
        sub = ".".join(parts[: i + 1])
        if part not in hints:
            raise InputError(f"unknown config key '{sub}'" + _suggest(type(obj), part, ".".join(parts[:i]) + ("." if i else "")))
        tp = hints[part]
        if typing.get_origin(tp) is dict and i == len(parts) - 2:  # one entry of a mapping: prompts.fields.question
            return _Entry(getattr(obj, part)), parts[-1], typing.get_args(tp)[1]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                raise InputError(f"config key '{key}' is a section; set one of its fields, e.g. {key}.<field>=...")
            return obj, part, tp
        if not dataclasses.is_dataclass(tp):
            raise InputError(f"config key '{sub}' is not a section")
        obj = getattr(obj, part)
    raise InputError(f"config key '{key}': empty")


class _Entry:
    """A mapping field seen as an object whose attributes are its entries, so `prompts.fields.question=problem`
    is set like any other key."""

    def __init__(self, mapping: dict):
        object.__setattr__(self, "_mapping", mapping)

    def __setattr__(self, name: str, value: Any) -> None:
        self._mapping[name] = value


def apply_override(cfg: SSDConfig, text: str) -> None:
    """Sets one `key.sub=value` override (the text form: the command line)."""
    key, (raw, value) = parse_override(text)
    obj, name, tp = _field(cfg, key)
    # a string field takes the text as written (so `model.revision=1234` stays a string)
    wants_str = tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp) and value is not None)
    # a list field takes the comma-separated text (so `eval.temperatures=0.6` is [0.6])
    wants_text = wants_str or (typing.get_origin(tp) is list and not raw.strip().startswith("["))
    setattr(obj, name, _coerce(raw if wants_text else value, tp, key))


def set_value(cfg: SSDConfig, key: str, value: Any) -> None:
    """Sets one key to a typed value (a command-line flag's, already parsed), checked against the field's type."""
    obj, name, tp = _field(cfg, key)
    setattr(obj, name, _coerce(value, tp, key))


def validate(cfg: SSDConfig) -> SSDConfig:
    """Range checks that types alone cannot express. Each error names the key."""
    s, fl, t = cfg.sample, cfg.filter, cfg.train

    def bad(key, why):
        raise InputError(f"config key '{key}': {why}")

    if s.backend not in ("transformers", "vllm"):
        bad("sample.backend", f"must be transformers or vllm, got {s.backend!r}")
    for key in ("data_parallel_size", "tensor_parallel_size", "pipeline_parallel_size"):
        if getattr(s, key) < 1:
            bad(f"sample.{key}", "must be >= 1")
    if s.backend == "transformers" and (s.tensor_parallel_size > 1 or s.pipeline_parallel_size > 1):
        bad("sample.tensor_parallel_size", "tensor/pipeline parallelism needs sample.backend=vllm")
    if s.distributed_executor_backend not in ("", "mp", "ray"):
        bad("sample.distributed_executor_backend", f"must be '', mp or ray, got {s.distributed_executor_backend!r}")
    if s.gpu_memory_utilization is not None and not 0 < s.gpu_memory_utilization <= 1:
        bad("sample.gpu_memory_utilization", "must be in (0, 1] or null")
    for prefix, sec in (("sample", s), ("eval", cfg.eval)):
        if sec.temperature < 0:
            bad(f"{prefix}.temperature", "must be >= 0")
        if sec.top_k < 0:
            bad(f"{prefix}.top_k", "must be >= 0 (0 = off)")
        if not 0 < sec.top_p <= 1:
            bad(f"{prefix}.top_p", "must be in (0, 1]")
        if not 0 <= sec.min_p < 1:
            bad(f"{prefix}.min_p", "must be in [0, 1)")
        if sec.n < 1:
            bad(f"{prefix}.n", "must be >= 1")
        if sec.max_new_tokens < 1:
            bad(f"{prefix}.max_new_tokens", "must be >= 1")
    if cfg.eval.extraction not in ("official", "lenient"):
        bad("eval.extraction", f"must be official or lenient, got {cfg.eval.extraction!r}")
    if s.batch_size < 1:
        bad("sample.batch_size", "must be >= 1")
    if s.shard_size < 1:
        bad("sample.shard_size", "must be >= 1")
    if not 0 <= fl.drop_shortest_fraction < 1:
        bad("filter.drop_shortest_fraction", "must be in [0, 1)")
    if not 0 <= fl.holdout_fraction < 1:
        bad("filter.holdout_fraction", "must be in [0, 1)")
    if s.max_model_len is not None and s.max_model_len < 1:
        bad("sample.max_model_len", "must be >= 1 or null")
    e = cfg.eval
    for sec, section in (("sample", s), ("eval", e)):
        if section.decoding not in DECODINGS:
            bad(f"{sec}.decoding", f"must be plain or ssd_equivalent, got {section.decoding!r}")
        if section.control_temperature is not None and not section.control_temperature > 0:
            bad(f"{sec}.control_temperature", f"must be > 0 or null, got {section.control_temperature}")
        if section.control_top_k is not None and section.control_top_k < 0:
            bad(f"{sec}.control_top_k", f"must be >= 0 (0 = off) or null, got {section.control_top_k}")
        if section.control_top_p is not None and not 0 < section.control_top_p <= 1:
            bad(f"{sec}.control_top_p", f"must be in (0, 1] or null, got {section.control_top_p}")
    if s.decoding == "ssd_equivalent" and (s.control_temperature or s.temperature) == 0:
        bad("sample.control_temperature", "the control mirrors a sampling temperature > 0 (sample.temperature is 0: set this key)")
    if e.decoding == "ssd_equivalent" and (e.control_temperature or s.temperature) == 0:
        bad("eval.control_temperature", "the control mirrors a sampling temperature > 0 (sample.temperature is 0: set this key)")
    from .execute.benchmarks import MBPP_SPLITS, NAMES

    if e.benchmark not in ("", *NAMES):
        bad("eval.benchmark", f"must be one of {', '.join(NAMES)} or empty, got {e.benchmark!r}")
    if e.mbpp_split not in (*MBPP_SPLITS, "all"):
        bad("eval.mbpp_split", f"must be one of {', '.join(MBPP_SPLITS)} or all, got {e.mbpp_split!r}")
    if e.max_problems is not None and e.max_problems < 1:
        bad("eval.max_problems", f"must be >= 1 or null (all), got {e.max_problems}")
    for i, temp in enumerate(e.temperatures):
        if temp < 0:
            bad(f"eval.temperatures[{i}]", f"must be >= 0, got {temp}")
    if e.timeout is not None and not e.timeout > 0:
        bad("eval.timeout", f"must be > 0 seconds or null (the benchmark's default), got {e.timeout}")
    if e.workers is not None and e.workers < 1:
        bad("eval.workers", "must be >= 1 or null (one per available core)")
    if e.memory_mb < 64:
        bad("eval.memory_mb", f"must be >= 64 (a Python program needs tens of MB to start), got {e.memory_mb}")
    for key in ("start_month", "end_month"):
        month = getattr(e, key)
        if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            bad(f"eval.{key}", f"must be YYYY-MM or null, got {month!r}")
    if e.start_month and e.end_month and e.start_month > e.end_month:
        bad("eval.start_month", f"{e.start_month} is after eval.end_month {e.end_month}")
    for i, d in enumerate(e.difficulties):
        if d not in ("easy", "medium", "hard"):
            bad(f"eval.difficulties[{i}]", f"must be easy, medium or hard, got {d!r}")
    a = cfg.analyze
    if a.examples < 0:
        bad("analyze.examples", "must be >= 0")
    if a.max_texts < 1:
        bad("analyze.max_texts", "must be >= 1")
    if a.batch_tokens < 1:
        bad("analyze.batch_tokens", "must be >= 1")
    if not 0 < a.lock_threshold <= 1:
        bad("analyze.lock_threshold", "must be in (0, 1]")
    if t.learning_rate <= 0:
        bad("train.learning_rate", "must be > 0")
    if t.effective_batch_size < 1 or t.per_device_batch_size < 1:
        bad("train.effective_batch_size", "batch sizes must be >= 1")
    if t.effective_batch_size % t.per_device_batch_size:
        bad("train.effective_batch_size", f"must be a multiple of train.per_device_batch_size ({t.per_device_batch_size})")
    if t.epochs <= 0 and t.max_steps < 1:
        bad("train.epochs", f"must be > 0 (or set train.max_steps), got {t.epochs:g}: nothing would be trained")
    if t.max_steps != -1 and t.max_steps < 1:
        bad("train.max_steps", f"must be >= 1, or -1 to train for train.epochs, got {t.max_steps}")
    for key in ("max_seq_length", "save_steps", "save_total_limit", "logging_steps"):
        if getattr(t, key) < 1:
            bad(f"train.{key}", f"must be >= 1, got {getattr(t, key)}")
    if not 0 <= t.warmup_ratio < 1:
        bad("train.warmup_ratio", f"must be in [0, 1), got {t.warmup_ratio}")
    if t.weight_decay < 0:
        bad("train.weight_decay", f"must be >= 0, got {t.weight_decay}")
    lo = t.lora
    if lo.r < 1:
        bad("train.lora.r", f"must be >= 1, got {lo.r}")
    if lo.alpha <= 0:
        bad("train.lora.alpha", f"must be > 0, got {lo.alpha}")
    if not 0 <= lo.dropout < 1:
        bad("train.lora.dropout", f"must be in [0, 1), got {lo.dropout}")
    if not lo.target_modules:
        bad("train.lora.target_modules", "must name at least one module (or all-linear)")
    if lo.target_parameters and lo.dropout:
        bad("train.lora.dropout", "PEFT's target_parameters (train.lora.target_parameters) need train.lora.dropout=0")
    if not cfg.prompts.split:
        bad("prompts.split", "must not be empty")
    for tracker in t.report_to:
        if tracker not in TRACKERS:
            bad("train.report_to", f"each tracker must be one of {', '.join(TRACKERS)}, got {tracker!r}")
    if "none" in t.report_to and len(t.report_to) > 1:
        bad("train.report_to", f"none cannot be combined with other trackers, got {','.join(t.report_to)}")
    if t.push_to_hub and not t.hub_model_id:
        bad("train.hub_model_id", "train.push_to_hub needs the Hub repo to upload to (USER/NAME)")
    for key in ("hub_model_id", "hub_dataset_id"):
        if getattr(t, key) and not HUB_REPO_ID.fullmatch(getattr(t, key)):
            bad(f"train.{key}", f"expected a Hub repo id NAMESPACE/NAME, got {getattr(t, key)!r}")
    if t.precision not in ("auto", "bf16", "fp16", "fp32"):
        bad("train.precision", f"must be auto, bf16, fp16 or fp32, got {t.precision!r}")
    if cfg.model.dtype not in ("auto", "bfloat16", "float16", "float32"):
        bad("model.dtype", f"must be auto, bfloat16, float16 or float32, got {cfg.model.dtype!r}")
    if t.weights_dtype not in ("auto", "float32", "bfloat16"):
        bad("train.weights_dtype", f"must be auto, float32 or bfloat16, got {t.weights_dtype!r}")
    if t.lora.load_in_4bit and not t.lora.enabled:
        bad("train.lora.load_in_4bit", "QLoRA trains adapters: set train.lora.enabled=true too")
    if cfg.prompts.format not in ("auto", "rstar", "livecodebench", "humaneval", "messages"):
        bad("prompts.format", f"must be auto, rstar, livecodebench, humaneval or messages, got {cfg.prompts.format!r}")
    for name in cfg.prompts.fields:
        if name not in ("id", "question", "starter_code", "messages"):
            bad(f"prompts.fields.{name}", "our field names are id, question, starter_code and messages (each mapped to "
                "one of your records' fields, e.g. prompts.fields.question=problem)")
    if cfg.prompts.max_prompts is not None and cfg.prompts.max_prompts < 1:
        bad("prompts.max_prompts", "must be >= 1 or null")
    if cfg.prompts.offset < 0:
        bad("prompts.offset", "must be >= 0")
    if cfg.prompts.ngram < 1:
        bad("prompts.ngram", "must be >= 1 (13 is the usual)")
    if cfg.prompts.ngram_common < 0:
        bad("prompts.ngram_common", "must be >= 0 (0 = count every n-gram)")
    for i, item in enumerate(cfg.prompts.decontaminate_against):
        bench, _, path = item.partition(":")
        if bench not in ("humaneval", "livecodebench") or not path:
            bad(f"prompts.decontaminate_against[{i}]", f"expected humaneval:PATH or livecodebench:PATH, got {item!r}")
    pl = cfg.pipeline
    if pl.rounds < 1:
        bad("pipeline.rounds", "must be >= 1")
    if pl.round_prompts not in ("same", "fresh"):
        bad("pipeline.round_prompts", f"must be same or fresh, got {pl.round_prompts!r}")
    if pl.round_init not in ("previous", "base"):
        bad("pipeline.round_init", f"must be previous or base, got {pl.round_init!r}")
    if pl.rounds > 1 and pl.round_prompts == "fresh" and cfg.prompts.max_prompts is None:
        bad("pipeline.round_prompts", "fresh slices need prompts.max_prompts (the slice size)")
    return cfg


class _RepeatedKey(yaml.constructor.ConstructorError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _RepeatedKey(
                        None, None, f"key '{key}' appears twice (first on line {seen[key]})", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's data; a malformed file or a repeated key is an InputError naming file:line:column."""
    from .io import read_text

    p = Path(path)
    text = read_text(p, "config file")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        if isinstance(e, _RepeatedKey):
            raise InputError(f"{where}: {e.problem}") from None
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise InputError(f"{where}: malformed YAML ({what})") from None
    except yaml.YAMLError as e:
        raise InputError(f"{p}: malformed YAML ({str(e).splitlines()[0]})") from None


# Keys holding paths. In a YAML file a relative path is relative to the file's directory, so a config can sit
# beside its data; on the command line it is relative to the working directory. `name_or_path`, `prompts.path`
# and `eval.problems` may also be hub ids: those are taken as file-relative only when that path exists (or, for
# the two problem keys, when the value names a file by its extension).
PATH_KEYS = ("model.chat_template", "output_dir", "prompts.decontaminate_against")
HUB_OR_PATH_KEYS = ("model.name_or_path", "prompts.path", "eval.problems")
_FILE_SUFFIXES = (".jsonl", ".json", ".gz", ".parquet", ".jinja", ".yaml", ".yml", ".txt")


def _is_relative_local(value: str) -> bool:
    return bool(value) and not Path(value).expanduser().is_absolute() and "://" not in value


def _map_paths(data: dict, fn) -> None:
    """Applies fn(value, key) to every path a config mapping holds (for BENCH:PATH items, to the PATH part)."""
    def one(value, key):
        if not isinstance(value, str):
            return value
        if key == "prompts.decontaminate_against":
            bench, sep, rest = value.partition(":")
            return bench + sep + fn(rest, "output_dir") if sep else value
        return fn(value, key)

    for key in (*PATH_KEYS, *HUB_OR_PATH_KEYS):
        section, _, name = key.rpartition(".")
        holder = data.get(section) if section else data
        if isinstance(holder, dict) and name in holder:
            value = holder[name]
            holder[name] = [one(v, key) for v in value] if isinstance(value, list) else one(value, key)


def _relocate(value: str, base: Path, key: str) -> str:
    """`value` read from a file in `base`, as a path that works from the working directory."""
    if not _is_relative_local(value):
        return value
    candidate = os.path.normpath(base / value)
    if key in HUB_OR_PATH_KEYS and not Path(candidate).exists():
        names_a_file = key != "model.name_or_path" and value.lower().endswith(_FILE_SUFFIXES)
        if not names_a_file:
            return value  # a hub id (or a path from the working directory, as before)
    return candidate


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: SSDConfig | None = None,
                values: dict[str, Any] | None = None) -> SSDConfig:
    """Defaults (or `base`) <- YAML file <- `key=value` overrides <- `values` ({key: typed value}: what a command's
    own flags set), then validated. Relative paths in the file are relative to it."""
    cfg = base if base is not None else SSDConfig()
    if path:
        p = Path(path)
        data = read_yaml(p) or {}
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a mapping of config keys at the top level")
        _map_paths(data, lambda value, key: _relocate(value, p.parent, key))
        apply_mapping(cfg, data, str(p))
    for o in overrides:
        apply_override(cfg, o)
    for key, value in (values or {}).items():
        set_value(cfg, key, value)
    try:
        return validate(cfg)
    except InputError as e:  # a bad value the file set (and no override replaced) is reported with the file
        key = re.match(r"config key '([\w.]+)", str(e))
        given = {parse_override(o)[0] for o in overrides} | set(values or ())
        if path and key and key.group(1) in _leaf_keys(data) and key.group(1) not in given:
            raise InputError(f"{path}: {e}") from None
        raise


def _leaf_keys(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return {prefix[:-1]}
    return set().union(*(_leaf_keys(v, f"{prefix}{k}.") for k, v in data.items())) if data else set()


def _portable(value: str, key: str, directory: Path) -> str:
    """The inverse of `_relocate` for a config written into `directory`: a local relative path, rewritten relative
    to it, so loading the file back finds the same file from any working directory."""
    if not _is_relative_local(value) or (key in HUB_OR_PATH_KEYS and not Path(value).exists()):
        return value
    return os.path.relpath(os.path.abspath(value), os.path.abspath(directory))


def write_config(cfg: Any, path: str | Path) -> Path:
    """Writes cfg as YAML at `path` (atomically), its relative paths rewritten relative to the file's directory, so
    `load_config(path)` gives back the same config from any working directory."""
    from .io import atomic_write_text

    path = Path(path)
    data = to_dict(cfg)
    _map_paths(data, lambda value, key: _portable(value, key, path.parent))
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


# keys added after run directories first recorded their config: left out of a stage's identity while at their
# default, so directories made before them still match, and resume, when the key is not used
LATER_KEYS = {"prompts.fields": {}, "prompts.system_prompt": None, "train.lora.target_parameters": [],
              "eval.mbpp_split": "test", "eval.max_problems": None, "eval.task_ids": [],
              **{f"{sec}.{k}": v for sec in ("sample", "eval") for k, v in
                 (("decoding", "plain"), ("control_temperature", None), ("control_top_k", None), ("control_top_p", None))},
              "eval.control": True}
# keys that decide where results are shown and shared, not what is trained: never part of an identity, so turning a
# tracker or the Hub upload on does not make a finished stage "another config"
OUTSIDE_IDENTITY = ("train.report_to", "train.run_name", "train.push_to_hub", "train.hub_model_id",
                    "train.hub_dataset_id", "train.hub_private_repo")


def identity(cfg: Any, prefix: str = "") -> dict:
    """`to_dict(cfg)` (a section named `prefix`, or the whole config) as a stage's identity: LATER_KEYS at their
    defaults and OUTSIDE_IDENTITY left out. A dict (a config as a manifest recorded it) is taken as that config."""
    import copy

    data = copy.deepcopy(cfg) if isinstance(cfg, dict) else to_dict(cfg)
    outside = object()
    for key, default in [*LATER_KEYS.items(), *((k, outside) for k in OUTSIDE_IDENTITY)]:
        if prefix and not key.startswith(prefix + "."):
            continue
        *path, name = (key[len(prefix) + 1:] if prefix else key).split(".")
        holder = data
        for part in path:
            holder = holder.get(part, {})
        if name in holder and (default is outside or holder[name] == default):
            del holder[name]
    return data


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def describe(cls=SSDConfig, prefix: str = "", default_obj: Any = None) -> list[tuple[str, str, str]]:
    """(key, default, help) for every leaf field: the documentation `--help` prints."""
    obj = default_obj if default_obj is not None else cls()
    rows = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{prefix}{f.name}.", getattr(obj, f.name))
        else:
            rows.append((f"{prefix}{f.name}", repr(getattr(obj, f.name)), f.metadata.get("help", "")))
    return rows
