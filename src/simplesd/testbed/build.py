"""`ssd testbed build`: the testbed's base model, built once from its config and shipped with the package.

Steps, each deterministic for the config's seed:
1. the task family's disjoint splits (pretrain / ssd / dev / test), written as LiveCodeBench-format JSONL;
2. pretraining rows: every pretraining problem with one of its reference solutions (style, variable names
   drawn at random), with generic noise: each response token replaced by a random token with probability
   `noise` (never shaped around any sampling threshold);
3. a byte-level BPE tokenizer with a ChatML template, trained on those texts;
4. a randomly initialised `LlamaForCausalLM` (head_dim 64, so vLLM has kernels for it);
5. pretraining with simplesd's own `train` stage (TRL SFTTrainer, loss on the response) — the same code path
   SSD uses afterwards;
6. export as float16 safetensors, then greedy pass@1 on the dev split measured on the exported weights.

The build manifest records the config, seed, data hashes, steps, wall time and the dev pass@1.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io import atomic_write_jsonl, write_json

SPLIT_SEED = 20261123


@dataclass
class BuildConfig:
    seed: int = SPLIT_SEED
    sizes: dict = field(default_factory=lambda: {"test": 200, "dev": 100, "ssd": 800, "pretrain": 60000})
    noise: float = 0.02
    vocab_size: int = 1024
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    head_dim: int = 64
    intermediate_size: int = 704
    learning_rate: float = 3e-3
    pretrain_rounds: list = field(default_factory=lambda: [36000, 24000])  # problems per round: each round is a
    # `train` stage continuing the last one's model (resumable per round); they add up to sizes["pretrain"]
    continue_learning_rate: float = 1e-3  # peak LR of rounds after the first (a fresh warm-up + cosine)
    batch_size: int = 32
    epochs: float = 1.0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    max_seq_length: int = 512
    dev_max_new_tokens: int = 320

    @classmethod
    def reduced(cls) -> BuildConfig:
        """A minutes-long version of the same pipeline, for tests."""
        return cls(sizes={"test": 20, "dev": 16, "ssd": 24, "pretrain": 192}, pretrain_rounds=[128, 64],
                   vocab_size=512, hidden_size=64,
                   num_layers=2, num_heads=1, intermediate_size=128, batch_size=16, dev_max_new_tokens=48)


def split_records(seed: int, sizes: dict) -> dict[str, list[dict]]:
    from .tasks import make_splits

    return {name: [rec for _, rec in items] for name, items in make_splits(seed, sizes).items()}


def records_hash(records: list[dict]) -> str:
    h = hashlib.sha256()
    for rec in records:
        h.update(json.dumps(rec, sort_keys=True).encode())
    return h.hexdigest()


def pretraining_rows(records: list[dict], tokenizer, noise: float, seed: int) -> list[dict]:
    """Chat rows [user, assistant] with the paper's prompt template and a noisy reference response."""
    from ..prompts import problem_from_record, user_prompt

    rng = random.Random(seed)
    specials = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in specials]
    rows = []
    for rec in records:
        ref = rng.choice(rec["testbed"]["references"])
        response = ref["response"]
        if noise > 0:
            ids = tokenizer(response, add_special_tokens=False)["input_ids"]
            ids = [rng.choice(vocab) if rng.random() < noise else t for t in ids]
            response = tokenizer.decode(ids)
        rows.append({"messages": [{"role": "user", "content": user_prompt(problem_from_record(rec, "livecodebench", rec["question_id"], 0))},
                                  {"role": "assistant", "content": response}]})
    return rows


def build(out_dir: str | Path, bcfg: BuildConfig | None = None, progress: bool = True, echo=print) -> dict:
    """Builds the base model into out_dir/model (float16) with out_dir/build_manifest.json. Resumable: the
    pretraining stage continues from its last checkpoint."""
    from ..config import SSDConfig
    from ..evaluate import evaluate
    from ..manifest import environment
    from ..prompts import problem_from_record, user_prompt
    from ..train import train
    from .tiny import build_tiny_model, build_tokenizer

    bcfg = bcfg or BuildConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings = {}

    echo(f"[1/5] task splits (seed {bcfg.seed}) -> {out / 'data'}")
    splits = split_records(bcfg.seed, bcfg.sizes)
    for name, recs in splits.items():
        atomic_write_jsonl(out / "data" / f"{name}.jsonl", recs)
    hashes = {name: records_hash(recs) for name, recs in splits.items()}
    timings["splits"] = time.time() - t0

    echo("[2/5] tokenizer and pretraining rows")
    t = time.time()
    if sum(bcfg.pretrain_rounds) != len(splits["pretrain"]):
        raise ValueError(f"pretrain_rounds {bcfg.pretrain_rounds} must add up to sizes['pretrain']")
    bounds = [sum(bcfg.pretrain_rounds[:i]) for i in range(len(bcfg.pretrain_rounds) + 1)]
    rounds = len(bcfg.pretrain_rounds)
    first = splits["pretrain"][:bounds[1]]  # the tokenizer learns from the first round's problems
    corpus = [user_prompt(problem_from_record(r, "livecodebench", r["question_id"], 0)) for r in first]
    corpus += [ref["response"] for r in first for ref in r["testbed"]["references"]]
    tokenizer = build_tokenizer(bcfg.vocab_size, corpus, phrases=True)
    rows = pretraining_rows(splits["pretrain"], tokenizer, bcfg.noise, bcfg.seed)
    row_files = [out / "data" / ("pretrain_rows.jsonl" if i == 0 else f"pretrain_rows_{i + 1}.jsonl")
                 for i in range(rounds)]
    for i, f in enumerate(row_files):
        atomic_write_jsonl(f, rows[bounds[i]:bounds[i + 1]])
    init = out / "init"
    build_tiny_model(init, seed=bcfg.seed, tokenizer=tokenizer, hidden_size=bcfg.hidden_size,
                     num_layers=bcfg.num_layers, num_heads=bcfg.num_heads, head_dim=bcfg.head_dim,
                     intermediate_size=bcfg.intermediate_size)
    timings["tokenizer_and_rows"] = time.time() - t

    model, rounds_done = init, []
    for i, rows_file in enumerate(row_files):
        stage_dir = out / ("pretrain" if i == 0 else f"pretrain_{i + 1}")
        echo(f"[3/5] pretraining round {i + 1}/{rounds}: {bounds[i + 1] - bounds[i]} problems -> {stage_dir}")
        cfg = SSDConfig()
        cfg.model.name_or_path = str(model)
        tc = cfg.train
        tc.learning_rate = bcfg.learning_rate if i == 0 else bcfg.continue_learning_rate
        tc.epochs, tc.warmup_ratio, tc.weight_decay = bcfg.epochs, bcfg.warmup_ratio, bcfg.weight_decay
        tc.effective_batch_size = tc.per_device_batch_size = bcfg.batch_size
        tc.max_seq_length, tc.save_steps, tc.logging_steps, tc.seed = bcfg.max_seq_length, 100, 10, bcfg.seed
        m = train(cfg, rows_file, stage_dir, progress=progress)
        rounds_done.append({k: m["counts"][k] for k in ("optimizer_steps", "first_loss", "final_loss", "trained_tokens")}
                           | {"learning_rate": tc.learning_rate, "seconds": round(m["timings_s"]["total"], 1)})
        model = stage_dir / "model"
    timings["pretrain"] = sum(r["seconds"] for r in rounds_done)

    echo(f"[4/5] export float16 -> {out / 'model'}")
    export_fp16(model, out / "model")

    echo(f"[5/5] greedy pass@1 on the dev split ({len(splits['dev'])} problems)")
    t = time.time()
    ecfg = dev_eval_config(out / "data" / "dev.jsonl", bcfg.dev_max_new_tokens)
    dev = evaluate(ecfg, str(out / "model"), out / "dev_eval", progress=progress)
    timings["dev_eval"] = time.time() - t
    timings["this_invocation"] = time.time() - t0  # rounds finished by an earlier invocation were skipped
    timings["total"] = sum(v for k, v in timings.items() if k != "this_invocation")

    params = sum(int(v) for v in json.loads((out / "model" / "param_count.json").read_text()).values())
    manifest = {
        "stage": "testbed-build",
        "build_config": asdict(bcfg),
        "seed": bcfg.seed,
        "split_hashes": hashes,
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "parameters": params,
        "pretrain": {"optimizer_steps": sum(r["optimizer_steps"] for r in rounds_done),
                     "final_loss": rounds_done[-1]["final_loss"], "rounds": rounds_done},
        "dev_greedy_pass@1": dev["by_temperature"]["0"]["pass@1"],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "model_files": file_hashes(out / "model"),
        "environment": environment(),
    }
    write_json(out / "model" / "build_manifest.json", manifest)
    echo(f"built: {params:,} parameters, {manifest['pretrain']['optimizer_steps']} steps, dev greedy pass@1 "
         f"{manifest['dev_greedy_pass@1']:.3f}, {timings['total'] / 60:.1f} min")
    return manifest


def dev_eval_config(problems: str | Path, max_new_tokens: int, temperatures=(0.0,), n: int = 1):
    from ..config import SSDConfig

    cfg = SSDConfig()
    e = cfg.eval
    e.benchmark, e.problems, e.start_month, e.end_month = "livecodebench", str(problems), None, None
    e.temperatures, e.n, e.max_new_tokens = list(temperatures), n, max_new_tokens
    cfg.sample.batch_size, cfg.sample.shard_size = 32, 128
    return cfg


def export_fp16(src: Path, dst: Path) -> None:
    """Saves the model as float16 safetensors (half the bytes; loaded back as float32 on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    counts = {"total": sum(p.numel() for p in model.parameters())}
    (tmp / "param_count.json").write_text(json.dumps(counts))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def file_hashes(model_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir())
            if p.is_file() and p.name != "build_manifest.json"}


def install(built: str | Path) -> Path:
    """Replaces the package's shipped base by a build's model (what a maintainer commits)."""
    from .demo import shipped_base

    dest = shipped_base()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(Path(built) / "model", tmp)
    for f in tmp.iterdir():
        f.chmod(0o644)  # atomic writes create 0600 files; package data is world-readable
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
