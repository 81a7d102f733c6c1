"""Step 1: sample N solutions per problem from the frozen model.

The problems: `prompts.prepare_prompts` (duplicates dropped, decontaminated against the evaluation's benchmark,
seeded shuffle, offset, cap), with what was dropped and why in `prompts.json`. The draws: `sampling.backends`
(transformers or vLLM, one distribution, `config.Decoding`), each record flagged by `sampling.flags` and written as
a `records.SampleRecord`. `sample.data_parallel_size` > 1: `sampling.replicas` starts that many workers.

Output: `shard-NNNNN.jsonl` files, each written atomically once all its prompts are done, plus `plan.json`
(which problems go in which shard), `prompts.json` and `manifest.json`. Prompts are sorted longest first (length
buckets: batches of similar length waste little padding, and a memory error shows up at the start, not hours
in) and cut into shards of `shard_size` prompts. Every sample draws from its own seeded stream, so a rerun after a
crash redoes only the missing shards and writes the records an uninterrupted run would (up to floating-point
differences a different batch shape can make on a GPU).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .chat import encode, opens_reasoning, render
from .config import SSDConfig, identity, reads, to_dict
from .io import InputError, atomic_write_jsonl, fingerprint_path, read_json, read_jsonl, remove_stale_temporaries, write_json
from .prompts import Problem, context, log_contamination, prepare_prompts, user_prompt
from .records import SampleRecord
from .sampling.backends import Engine, generate_batch, generate_vllm, load_engine, release, sample_seed
from .sampling.flags import FLAGS
from .stage import Stage

log = logging.getLogger(__name__)

PLAN = "plan.json"


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.jsonl"


def _plan(problems: list[Problem], tokenizer, cfg: SSDConfig, fp: str) -> dict:
    lengths = [len(ids) for ids in encode(tokenizer, [render(tokenizer, context(p, cfg.prompts.system_prompt))
                                                      for p in problems])]
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
    prompts = {k: v for k, v in identity(cfg.prompts, "prompts").items() if k != "path"}
    # how the work is spread (replicas, parallelism, memory, batches: each sample has its own seed) does not
    # change the samples; the backend does
    placement = ("data_parallel_size", "tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                 "gpu_memory_utilization", "max_model_len", "batch_size")
    sample_cfg = {k: v for k, v in identity(cfg.sample, "sample").items() if k not in placement}
    against = [{k: v for k, v in t.describe().items() if k != "path"} for t in targets]  # files: by content, above
    stage_cfg = {"model": to_dict(cfg.model), "prompts": prompts, "sample": sample_cfg, "decontaminate_against": against}
    return stage_cfg, inputs


@reads("model", "prompts", "sample", "eval")
def sample(cfg: SSDConfig, out_dir: str | Path, *, progress: bool = True, overwrite: bool = False,
           loaded: Engine | None = None, worker: tuple[int, int] | None = None) -> dict | None:
    """Samples `cfg.sample.n` outputs for every problem in `cfg.prompts` into `out_dir`. Resumable.

    `overwrite`: a directory holding samples of another config or other inputs is emptied and sampled again
    (without it, that is an error listing the differences). `loaded` is an Engine already in memory for cfg.model
    (a T_eval sweep loads once). `worker=(i, n)` makes this process one of n replicas: it writes only the shards
    i, i+n, ... that are missing and returns None (the launcher, or a later plain `ssd sample`, writes the
    manifest)."""
    from .models import check_model_files, load_tokenizer, peak_gpu_memory_gb
    from .sampling.replicas import launch_replicas

    s = cfg.sample
    stage_cfg, inputs = sample_identity(cfg)
    st = Stage("sample", out_dir, stage_cfg, inputs, work=("shard-*.jsonl",),
               bookkeeping=(PLAN, "prompts.json", "replica-*.log"))
    if st.finished():
        return st.manifest
    out_dir = st.out_dir

    # every input checked before anything is written: the model's files and tokenizer, the problems
    if loaded is None:
        check_model_files(cfg.model)
    tokenizer = loaded.tokenizer if loaded else load_tokenizer(cfg.model)
    selection, prompts_report = prepare_prompts(cfg)
    problems = selection.problems
    by_id = {p.id: p for p in problems}
    plan_path = out_dir / PLAN
    if worker is None:
        st.claim(overwrite)
        remove_stale_temporaries(out_dir)
    plan = read_json(plan_path, default=None)
    if plan is not None and plan.get("fingerprint") != st.fp:
        raise InputError(f"{plan_path}: written for another config or input; rerun the launcher (`ssd sample` "
                         "without --worker) to start over")
    if worker is None:
        write_json(out_dir / "prompts.json", prompts_report)
        log_contamination(cfg, selection, out_dir / "prompts.json")
    if plan is None:  # every replica computes the same plan; the writes are atomic
        plan = _plan(problems, tokenizer, cfg, st.fp)
        write_json(plan_path, plan)

    def missing() -> list[int]:
        return [i for i, ids in enumerate(plan["shards"]) if not _shard_complete(out_dir / shard_name(i), len(ids) * s.n)]

    todo = missing()
    resumed = len(plan["shards"]) - len(todo)
    if resumed and todo:
        log.info("sample: resuming, %d of %d shards already written", resumed, len(plan["shards"]))
    gen_tokens, device = 0, None
    if worker is None and s.data_parallel_size > 1 and todo:
        st.lap("load")
        device = launch_replicas(cfg, out_dir, plan, missing, progress)
    elif todo:
        mine = [i for i in todo if worker is None or i % worker[1] == worker[0]]
        engine = loaded or load_engine(cfg, plan.get("max_prompt_tokens", 0))
        device = engine.device
        from .progress import bar as progress_bar

        total = sum(len(plan["shards"][i]) for i in mine)
        if worker is None:  # the whole run, resumed shards included
            bar = progress_bar(len(problems), "sample", "prompt", progress, initial=len(problems) - total)
        else:
            bar = progress_bar(total, f"sample {worker[0]}/{worker[1]}", "prompt", progress)
        st.lap("load")
        t_gen = time.time()
        for shard in mine:
            records = _generate_shard(engine, cfg, [by_id[i] for i in plan["shards"][shard]], shard)
            gen_tokens += sum(r.completion_tokens for r in records)
            atomic_write_jsonl(out_dir / shard_name(shard), (r.to_json() for r in records))
            bar.set_postfix(tok_s=f"{gen_tokens / max(time.time() - t_gen, 1e-9):.0f}")
            bar.update(len(plan["shards"][shard]))
        bar.close()
        if loaded is None:
            release(engine)
    else:
        st.lap("load")
    generate_s = st.lap("generate")
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
            # a Thinking model's samples: those that never closed their reasoning, and those cut off inside it
            counts["thinking"] = counts.get("thinking", 0) + bool(r.get("thinking"))
            counts["without_think_close"] = counts.get("without_think_close", 0) + (
                bool(r.get("thinking")) and "</think>" not in r["output"])
            counts["truncated_in_reasoning"] = counts.get("truncated_in_reasoning", 0) + (
                bool(r.get("reasoning_unclosed")) and r["finish_reason"] == "length")
    return st.finish(
        counts, outputs=[PLAN, "prompts.json"] + [shard_name(i) for i in range(len(plan["shards"]))],
        config={"model": to_dict(cfg.model), "prompts": to_dict(cfg.prompts), "sample": to_dict(cfg.sample)},
        seeds={"sample.seed": s.seed, "prompts.seed": cfg.prompts.seed,
               "per_sample": "sha256(simplesd:{sample.seed}:{prompt_id}:{sample_index}), first 4 bytes"},
        extra={"prompts": selection.counts, "backend": s.backend, "device": device, "replicas": s.data_parallel_size,
               "peak_gpu_memory_gb": peak_gpu_memory_gb() if s.backend == "transformers" else None,
               "generated_tokens_this_run": gen_tokens,
               "generate_tokens_per_s_this_run": round(gen_tokens / max(generate_s, 1e-9), 2)},
    )


def _generate_shard(engine: Engine, cfg: SSDConfig, problems: list[Problem], shard: int) -> list[SampleRecord]:
    """All samples of one shard's problems, in (problem, sample index) order. Each record keeps the context's token
    ids as fed to the model and the ids it drew."""
    s, d, tok = cfg.sample, cfg.sample.to_decoding(), engine.tokenizer
    contexts = [context(p, cfg.prompts.system_prompt) for p in problems]
    prompt_ids = encode(tok, [render(tok, m) for m in contexts])
    thinking = [opens_reasoning(tok, m) for m in contexts]
    if engine.backend == "vllm":
        results = generate_vllm(engine, prompt_ids, [p.id for p in problems], d, thinking)
    else:
        results = []
        for start in range(0, len(problems), s.batch_size):
            batch = problems[start : start + s.batch_size]
            seeds = [sample_seed(d.seed, p.id, k) for p in batch for k in range(d.n)]
            end = start + s.batch_size
            for j, r in enumerate(generate_batch(engine.model, tok, prompt_ids[start:end], d, engine.stop_ids, seeds,
                                                 thinking[start:end])):
                results.append({**r, "_prompt": start + j // d.n, "sample_index": j % d.n, "seed": seeds[j]})
    records = []
    for r in results:
        j = r.pop("_prompt")
        p, msgs = problems[j], contexts[j]
        records.append(SampleRecord(prompt_id=p.id, prompt=user_prompt(p), shard=shard,
                                    kind="chat" if p.messages else p.kind, meta=p.meta,
                                    messages=None if len(msgs) == 1 else msgs, **r))
    return records


def iter_samples(path: str | Path):
    """Yields (location, SampleRecord) from a sample directory (its shards in order) or a single JSONL file (records
    another tool wrote are checked, and flagged from their text when they carry no flags)."""
    path = Path(path)
    if path.is_dir():
        plan_path = path / PLAN
        if not plan_path.is_file():
            raise InputError(f"{path}: not a sample directory (no {PLAN}); run `ssd sample` first")
        plan = read_json(plan_path)
        files = [path / shard_name(i) for i in range(len(plan["shards"]))]
        for f in files:
            if not f.is_file():
                raise InputError(f"{f}: shard missing; the sample run is incomplete (rerun `ssd sample` to finish it)")
    else:
        files = [path]
    for f in files:
        for lineno, r in read_jsonl(f):
            yield f"{f}:{lineno}", SampleRecord.from_json(f"{f}:{lineno}", r)
