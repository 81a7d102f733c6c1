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

import random
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

from ..io import InputError, atomic_write_jsonl, read_json, write_json
from .artefacts import SETTINGS, export_fp16, file_hashes, records_hash, split_records


@dataclass
class BuildConfig:
    """How the base is built. The values are in build.yaml (`load_build_config`), not here."""

    seed: int
    sizes: dict
    noise: float
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    learning_rate: float
    pretrain_rounds: list
    continue_learning_rate: float
    batch_size: int
    epochs: float
    warmup_ratio: float
    weight_decay: float
    max_seq_length: int
    dev_max_new_tokens: int
    save_steps: int
    snapshots: list  # [round, step] pairs: checkpoints exported as bases of lower strength, each measured on dev


BUILD_YAML, REDUCED_YAML = SETTINGS / "build.yaml", SETTINGS / "build-reduced.yaml"


def load_build_config(path: str | Path | None = None) -> BuildConfig:
    """build.yaml's values with those of the file at `path` on top; an unknown key or a value of the wrong type is
    an InputError naming the file and the key."""
    import difflib

    from ..config import _coerce, read_yaml

    hints = typing.get_type_hints(BuildConfig)
    values: dict = {}
    for f in [BUILD_YAML] + ([Path(path)] if path else []):
        data = read_yaml(f) or {}
        if not isinstance(data, dict):
            raise InputError(f"{f}: expected a mapping of build settings")
        for key, value in data.items():
            if key not in hints:
                close = difflib.get_close_matches(str(key), list(hints), n=1)
                raise InputError(f"{f}: unknown build setting '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            try:
                values[key] = _coerce(value, hints[key], key) if hints[key] in (int, float, str, bool) else value
            except InputError as e:
                raise InputError(f"{f}: {e}".replace("config key", "build setting")) from None
            if hints[key] in (dict, list) and not isinstance(value, hints[key]):
                raise InputError(f"{f}: build setting '{key}': expected a {hints[key].__name__}, got {value!r}")
    return BuildConfig(**values)


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

    bcfg = bcfg or load_build_config()
    snapshots = _snapshot_steps(bcfg)
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
        tc.max_seq_length, tc.save_steps, tc.logging_steps, tc.seed = bcfg.max_seq_length, bcfg.save_steps, 10, bcfg.seed
        if any(r == i + 1 for r, _ in snapshots):  # a snapshot's checkpoint must outlive the round
            tc.save_total_limit = 1000
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
    snapshot_rows = []
    for r, step in snapshots:
        name = f"round{r}-step{step}"
        echo(f"[5/5] snapshot {name}: export and greedy pass@1 on dev -> {out / 'snapshots' / name}")
        stage_dir = out / ("pretrain" if r == 1 else f"pretrain_{r}")
        snapshot_rows.append(_snapshot(out, stage_dir / "checkpoints" / f"checkpoint-{step}", name, ecfg, progress,
                                       {"round": r, "step": step}))
    timings["this_invocation"] = time.time() - t0  # rounds finished by an earlier invocation were skipped
    timings["total"] = sum(v for k, v in timings.items() if k != "this_invocation")

    params = sum(int(v) for v in read_json(out / "model" / "param_count.json").values())
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
        "dev_greedy_outcomes": dev_outcomes(out / "dev_eval", out / "data" / "dev.jsonl"),
        "snapshots": snapshot_rows,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "model_files": file_hashes(out / "model"),
        "environment": environment(),
    }
    write_json(out / "model" / "build_manifest.json", manifest)
    for row in snapshot_rows:  # each snapshot is a base `ssd demo --base` verifies like the shipped one
        before = sum(x["optimizer_steps"] for x in rounds_done[:row["round"] - 1])
        write_json(out / "snapshots" / row["name"] / "build_manifest.json", {
            **manifest, "snapshot_of": {"round": row["round"], "step": row["step"], "build_final_model_files": manifest["model_files"]},
            "pretrain": {"optimizer_steps": before + row["step"], "rounds": rounds_done[:row["round"] - 1]
                         + [{**rounds_done[row["round"] - 1], "optimizer_steps": row["step"], "stopped_at_snapshot": True}]},
            "dev_greedy_pass@1": row["dev_greedy_pass@1"], "dev_greedy_outcomes": row["dev_greedy_outcomes"], "snapshots": [],
            "parameters": params, "model_files": file_hashes(out / "snapshots" / row["name"])})
    echo(f"built: {params:,} parameters, {manifest['pretrain']['optimizer_steps']} steps, dev greedy pass@1 "
         f"{manifest['dev_greedy_pass@1']:.3f}, {timings['total'] / 60:.1f} min")
    return manifest


def _snapshot_steps(bcfg: BuildConfig) -> list[tuple[int, int]]:
    out = []
    for item in bcfg.snapshots:
        if (not isinstance(item, (list, tuple)) or len(item) != 2 or not all(isinstance(x, int) for x in item)
                or not 1 <= item[0] <= len(bcfg.pretrain_rounds) or item[1] <= 0 or item[1] % bcfg.save_steps):
            raise InputError(f"build setting 'snapshots': {item!r} is not [round, step] with a round of "
                             f"pretrain_rounds and a step that is a multiple of save_steps ({bcfg.save_steps})")
        out.append((item[0], item[1]))
    return out


def dev_outcomes(eval_dir: Path, dev_file: Path) -> dict:
    """Greedy outcomes on dev by kind (passed, loop, skip, ...), what a base's strength is chosen by."""
    from .demo import _records, failure_kinds

    return failure_kinds(eval_dir, _records(dev_file))


def _snapshot(out: Path, checkpoint: Path, name: str, ecfg, progress: bool, where: dict) -> dict:
    """A pretraining checkpoint exported as a base of its own (float16, with a build manifest of its own that
    names the build, its round and step, and its dev greedy pass@1 and outcomes)."""
    from ..evaluate import evaluate

    if not checkpoint.is_dir():
        raise InputError(f"{checkpoint}: no checkpoint for snapshot {name} (the round ended before that step?)")
    model = out / "snapshots" / name
    if not (model / "model.safetensors").is_file():
        export_fp16(checkpoint, model)
    done = model / "build_manifest.json"
    if done.is_file() and read_json(done)["model_files"] == file_hashes(model):  # a rerun: measured already
        m = read_json(done)
        return {"name": name, **where, "dev_greedy_pass@1": m["dev_greedy_pass@1"],
                "dev_greedy_outcomes": m["dev_greedy_outcomes"]}
    dev = evaluate(ecfg, str(model), out / "snapshots" / f"{name}-dev_eval", progress=progress)
    return {"name": name, **where, "dev_greedy_pass@1": dev["by_temperature"]["0"]["pass@1"],
            "dev_greedy_outcomes": dev_outcomes(out / "snapshots" / f"{name}-dev_eval", out / "data" / "dev.jsonl")}


def dev_eval_config(problems: str | Path, max_new_tokens: int, temperatures=(0.0,), n: int = 1):
    from ..config import SSDConfig

    cfg = SSDConfig()
    e = cfg.eval
    e.benchmark, e.problems, e.start_month, e.end_month = "livecodebench", str(problems), None, None
    e.temperatures, e.n, e.max_new_tokens = list(temperatures), n, max_new_tokens
    cfg.sample.batch_size, cfg.sample.shard_size = 32, 128
    return cfg


