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
distribution against a direct computation of the order above.

Output: `shard-NNNNN.jsonl` files, each written atomically once all its prompts are done, plus `plan.json`
(which problems go in which shard) and `manifest.json`. Prompts are sorted longest first (length buckets:
batches of similar length waste little padding, and a memory error shows up at the start, not hours in) and
cut into shards of `shard_size` prompts; each shard is generated in batches of `batch_size` prompts with
`num_return_sequences = n`. Each batch's seed derives from (global seed, shard, batch), so a rerun after a
crash redoes only the missing shards and produces the same records an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from .config import SSDConfig, to_dict
from .io import InputError, atomic_write_jsonl, fingerprint_path, read_json, read_jsonl, remove_stale_temporaries, write_json
from .manifest import MANIFEST, fingerprint, load_manifest, stage_is_done, write_manifest
from .prompts import Problem, chat_text, load_problems, user_prompt

log = logging.getLogger(__name__)

PLAN = "plan.json"


def batch_seed(seed: int, shard: int, batch: int) -> int:
    digest = hashlib.sha256(f"simplesd:{seed}:{shard}:{batch}".encode()).digest()
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


def generate_batch(model, tokenizer, texts: list[str], gen_kwargs: dict, stop_ids: list[int], seed: int) -> list[dict]:
    """One batched `generate` call over chat-formatted texts. Returns, per text and per sample (text-major),
    the decoded output, finish reason and token counts."""
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            **enc, **gen_kwargs, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id
        )
    n = gen_kwargs["num_return_sequences"]
    prompt_len = enc["input_ids"].shape[1]
    new = out[:, prompt_len:].tolist()
    prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
    stops = set(stop_ids)
    results = []
    for row, tokens in enumerate(new):
        end = next((i for i, t in enumerate(tokens) if t in stops), None)
        body = tokens if end is None else tokens[:end]
        results.append(
            {
                "output": tokenizer.decode(body, skip_special_tokens=True),
                "finish_reason": "length" if end is None else "stop",
                "prompt_tokens": int(prompt_tokens[row // n]),
                "completion_tokens": len(tokens) if end is None else end + 1,  # the stop token counts
            }
        )
    return results


def _plan(problems: list[Problem], tokenizer, cfg: SSDConfig, fp: str) -> dict:
    texts = [chat_text(tokenizer, user_prompt(p)) for p in problems]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(problems)), key=lambda i: (-lengths[i], i))
    size = cfg.sample.shard_size
    shards = [[problems[i].id for i in order[s : s + size]] for s in range(0, len(order), size)]
    return {"fingerprint": fp, "num_problems": len(problems), "shards": shards}


def _shard_complete(path: Path, expected: int) -> bool:
    if not path.is_file():
        return False
    try:
        return sum(1 for _ in read_jsonl(path)) == expected
    except InputError:
        return False


def sample_inputs(cfg: SSDConfig) -> tuple[dict, str]:
    inputs = {
        "model": fingerprint_path(cfg.model.name_or_path) + (f"@{cfg.model.revision}" if cfg.model.revision else ""),
        "prompts": fingerprint_path(cfg.prompts.path),
    }
    if cfg.model.chat_template:
        inputs["chat_template"] = fingerprint_path(cfg.model.chat_template)
    # the prompt file counts by content (above), not by where it lies: a copied run directory stays done
    prompts = {k: v for k, v in to_dict(cfg.prompts).items() if k != "path"}
    stage_cfg = {"model": to_dict(cfg.model), "prompts": prompts, "sample": to_dict(cfg.sample)}
    return inputs, fingerprint("sample", stage_cfg, inputs)


def sample(cfg: SSDConfig, out_dir: str | Path, progress: bool = True, loaded=None) -> dict:
    """Samples `cfg.sample.n` outputs for every problem in `cfg.prompts` into `out_dir`. Resumable.

    `loaded` is an optional (model, tokenizer) already in memory for cfg.model (a T_eval sweep loads once)."""
    out_dir = Path(out_dir)
    s = cfg.sample
    if s.backend != "transformers":
        raise InputError(f"config key 'sample.backend': {s.backend!r} is not available in this version (use transformers)")
    inputs, fp = sample_inputs(cfg)
    if stage_is_done(out_dir, fp):
        log.info("sample: %s is complete for this config and these inputs; skipping", out_dir)
        return load_manifest(out_dir)

    t0 = time.time()
    problems = load_problems(cfg.prompts.path, cfg.prompts.format, cfg.prompts.split, cfg.prompts.max_prompts)
    by_id = {p.id: p for p in problems}

    from .models import load_model, load_tokenizer, resolve_device, stop_token_ids

    tokenizer = loaded[1] if loaded else load_tokenizer(cfg.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    plan_path = out_dir / PLAN
    plan = read_json(plan_path) if plan_path.is_file() else None
    if plan is not None and plan.get("fingerprint") != fp:
        log.warning("sample: %s holds samples from another config or input; starting over", out_dir)
        for f in [out_dir / PLAN, out_dir / MANIFEST, *out_dir.glob("shard-*.jsonl")]:
            f.unlink(missing_ok=True)
        plan = None
    if plan is None:
        plan = _plan(problems, tokenizer, cfg, fp)
        write_json(plan_path, plan)

    todo = [i for i, ids in enumerate(plan["shards"]) if not _shard_complete(out_dir / shard_name(i), len(ids) * s.n)]
    done_prompts = len(problems) - sum(len(plan["shards"][i]) for i in todo)
    resumed = len(plan["shards"]) - len(todo)
    if resumed and todo:
        log.info("sample: resuming, %d of %d shards already written", resumed, len(plan["shards"]))

    t_load = time.time()
    device = str(loaded[0].device) if loaded else resolve_device(s.device)
    gen_tokens = 0
    if todo:
        model = loaded[0] if loaded else load_model(cfg.model, device)
        stops = stop_token_ids(model, tokenizer)
        kwargs = generation_kwargs(s.temperature, s.top_k, s.top_p, s.min_p, s.max_new_tokens, s.n)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(problems), initial=done_prompts, desc="sample", unit="prompt", disable=not progress)
        t_load = time.time()
        for shard in todo:
            ids = plan["shards"][shard]
            records = []
            for b, start in enumerate(range(0, len(ids), s.batch_size)):
                batch = [by_id[i] for i in ids[start : start + s.batch_size]]
                users = [user_prompt(p) for p in batch]
                seed = batch_seed(s.seed, shard, b)
                results = generate_batch(model, tokenizer, [chat_text(tokenizer, u) for u in users], kwargs, stops, seed)
                for j, r in enumerate(results):
                    p = batch[j // s.n]
                    records.append(
                        {"prompt_id": p.id, "sample_index": j % s.n, "prompt": users[j // s.n], **r,
                         "seed": seed, "shard": shard, "kind": p.kind, "meta": p.meta}
                    )
                    gen_tokens += r["completion_tokens"]
                bar.update(len(batch))
                bar.set_postfix(tok_s=f"{gen_tokens / max(time.time() - t_load, 1e-9):.0f}")
            atomic_write_jsonl(out_dir / shard_name(shard), records)
        bar.close()
    t_end = time.time()

    counts = {"problems": len(problems), "samples": 0, "finish_stop": 0, "finish_length": 0,
              "completion_tokens": 0, "shards": len(plan["shards"]), "shards_resumed": resumed}
    for i in range(len(plan["shards"])):
        for _, r in read_jsonl(out_dir / shard_name(i)):
            counts["samples"] += 1
            counts[f"finish_{r['finish_reason']}"] += 1
            counts["completion_tokens"] += r["completion_tokens"]
    outputs = [PLAN] + [shard_name(i) for i in range(len(plan["shards"]))]
    return write_manifest(
        out_dir, stage="sample", fp=fp, config={"model": to_dict(cfg.model), "prompts": to_dict(cfg.prompts),
                                                "sample": to_dict(cfg.sample)},
        inputs=inputs, outputs=outputs, counts=counts,
        timings={"load": t_load - t0, "generate": t_end - t_load, "total": t_end - t0},
        seeds={"sample.seed": s.seed},
        extra={"device": device, "generated_tokens_this_run": gen_tokens,
               "generate_tokens_per_s_this_run": round(gen_tokens / max(t_end - t_load, 1e-9), 2)},
    )


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
