"""Step 2: filter, barely. No verifier, no tests, no teacher.

In order: drop empty outputs; optionally drop samples by their flags (truncated, looping, without a code block,
without a reasoning block: all off by default, as in the paper); optionally drop exact duplicate (prompt, output)
pairs; then drop the shortest `drop_shortest_fraction` of what remains (by output tokens, ties broken by input
order, floor(fraction x count) samples). Flags are the sampler's (`sample.sample_flags`); records written by
another tool without them get them from their text. Writes `train.jsonl` with one
`{"messages": [user, assistant]}` per kept sample (the user turn is the sampler's prompt, byte for byte),
`stats.json` (kept / dropped by reason, flag counts, length histograms overall and per flag) and `manifest.json`.

Not in the paper: `holdout_fraction` of the kept prompts (chosen by a hash of the prompt id, so the same
prompts whatever the file order) go to `heldout.jsonl` instead of `train.jsonl`: the run's own samples that
neither model trained on, which `ssd analyze` teacher-forces by default.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

from .config import FilterConfig, SSDConfig, stage_config, to_dict
from .io import InputError, atomic_write_jsonl, fingerprint_path, output_dir, write_json
from .manifest import claim_output_dir, fingerprint, load_manifest, stage_is_done, write_manifest
from .sample import FLAGS, iter_samples, sample_flags

log = logging.getLogger(__name__)

# (flag, config switch, reason, whether the flag is what drops: True) in the order they apply
FLAG_RULES = (("truncated", "drop_truncated", "truncated", True), ("looping", "drop_looping", "looping", True),
              ("has_code", "require_code_block", "no_code_block", False), ("has_think", "require_think", "no_think", False))
REASONS = ["empty", "truncated", "looping", "no_code_block", "no_think", "duplicate", "shortest"]
_REQUIRED = {"prompt_id": str, "prompt": str, "output": str, "completion_tokens": int}


def histogram(values: list[int], bins: int = 20, edges: list[float] | None = None) -> dict:
    import numpy as np

    if edges is None:
        hi = max(values) if values else 1
        edges = np.linspace(0, max(hi, 1), bins + 1).tolist()
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [round(e, 2) for e in edges], "counts": counts.tolist()}


def _validate(where: str, r: dict) -> None:
    for name, tp in _REQUIRED.items():
        if name not in r:
            raise InputError(f"{where}: missing field '{name}'")
        if not isinstance(r[name], tp) or isinstance(r[name], bool):
            raise InputError(f"{where}: field '{name}' must be {tp.__name__}, got {type(r[name]).__name__}")


def select(records: list[dict], cfg: FilterConfig) -> tuple[list[int], dict[int, str]]:
    """Returns (indices kept in input order, {dropped index: reason})."""
    dropped: dict[int, str] = {}
    alive = list(range(len(records)))
    if cfg.drop_empty:
        for i in alive:
            if not records[i]["output"].strip():
                dropped[i] = "empty"
        alive = [i for i in alive if i not in dropped]
    for flag, switch, reason, drop_when in FLAG_RULES:
        if getattr(cfg, switch):
            for i in alive:
                if records[i][flag] == drop_when:
                    dropped[i] = reason
            alive = [i for i in alive if i not in dropped]
    if cfg.dedup:
        seen = set()
        for i in alive:
            key = (records[i]["prompt"], records[i]["output"])
            if key in seen:
                dropped[i] = "duplicate"
            seen.add(key)
        alive = [i for i in alive if i not in dropped]
    k = math.floor(cfg.drop_shortest_fraction * len(alive))
    for i in sorted(alive, key=lambda i: (records[i]["completion_tokens"], i))[:k]:
        dropped[i] = "shortest"
    return [i for i in alive if i not in dropped], dropped


def heldout_prompts(prompt_ids: list[str], fraction: float) -> set[str]:
    """ceil(fraction x prompts) prompt ids, at least one when fraction > 0 and never all of them, ranked by a
    hash of the id (stable under reordering and resumes)."""
    unique = sorted(set(prompt_ids), key=lambda p: (hashlib.sha256(p.encode()).hexdigest(), p))
    if fraction <= 0 or len(unique) < 2:
        return set()
    return set(unique[: min(math.ceil(fraction * len(unique)), len(unique) - 1)])


def filter_samples(cfg: SSDConfig, samples: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> dict:
    """Filters `samples` (a `ssd sample` directory or a samples JSONL file) by cfg.filter into out_dir. A directory
    holding another config's or other inputs' train.jsonl is refused unless `overwrite`."""
    fcfg = stage_config(cfg, "filter", "filter_samples")
    out_dir = output_dir(out_dir)
    samples = Path(samples)
    if not samples.exists():
        raise InputError(f"{samples}: samples not found (a sample directory or a JSONL file)")
    inputs = {"samples": fingerprint_path(samples)}
    fp = fingerprint("filter", to_dict(fcfg), inputs)
    if stage_is_done(out_dir, fp):
        log.info("filter: %s is complete for this config and these inputs; skipping", out_dir)
        return load_manifest(out_dir)
    t0 = time.time()
    records = []
    for where, r in iter_samples(samples):
        _validate(where, r)
        if any(f not in r for f in FLAGS):
            r.update(sample_flags(r["output"], r.get("finish_reason", "stop")))
        records.append(r)
    if not records:
        raise InputError(f"{samples}: no samples to filter")
    kept, dropped = select(records, fcfg)
    if not kept:
        raise InputError(f"{samples}: every sample was filtered out ({len(dropped)} dropped); nothing to train on")

    held = heldout_prompts([records[i]["prompt_id"] for i in kept], fcfg.holdout_fraction)
    claim_output_dir(out_dir, "filter", to_dict(fcfg), inputs, work=("train.jsonl", "heldout.jsonl"),
                     bookkeeping=("stats.json",), overwrite=overwrite, section="filter")

    def rows(indices):
        return ({"messages": [{"role": "user", "content": records[i]["prompt"]},
                              {"role": "assistant", "content": records[i]["output"]}],
                 "prompt_id": records[i]["prompt_id"], "sample_index": records[i].get("sample_index", 0)}
                for i in indices)

    atomic_write_jsonl(out_dir / "heldout.jsonl", rows(i for i in kept if records[i]["prompt_id"] in held))
    atomic_write_jsonl(out_dir / "train.jsonl", rows(i for i in kept if records[i]["prompt_id"] not in held))

    lengths = [r["completion_tokens"] for r in records]
    all_hist = histogram(lengths)
    stats = {
        "total": len(records),
        "kept": len(kept),
        "dropped": {reason: sum(1 for v in dropped.values() if v == reason) for reason in REASONS},
        "flags": {f: {"all": sum(bool(r[f]) for r in records), "kept": sum(bool(records[i][f]) for i in kept)} for f in FLAGS},
        "finish_reason": {fr: sum(1 for r in records if r.get("finish_reason") == fr) for fr in ("stop", "length")},
        "kept_prompts": len({records[i]["prompt_id"] for i in kept}),
        "held_out": sum(records[i]["prompt_id"] in held for i in kept),
        "held_out_prompts": len(held),
        "length_tokens": {
            "all": all_hist,
            "kept": histogram([lengths[i] for i in kept], edges=all_hist["edges"]),
            "dropped": histogram([lengths[i] for i in dropped], edges=all_hist["edges"]),
            # samples with each flag, kept or not, on the same bins
            **{f: histogram([x for x, r in zip(lengths, records) if r[f]], edges=all_hist["edges"]) for f in FLAGS},
            "shortest_kept": min(lengths[i] for i in kept),
            "mean_kept": round(sum(lengths[i] for i in kept) / len(kept), 2),
        },
    }
    write_json(out_dir / "stats.json", stats)
    return write_manifest(
        out_dir, stage="filter", fp=fp, config=to_dict(fcfg), inputs=inputs,
        outputs=["train.jsonl", "heldout.jsonl", "stats.json"],
        counts={"total": stats["total"], "kept": stats["kept"], "held_out": stats["held_out"],
                "train_rows": stats["kept"] - stats["held_out"],
                **{f"dropped_{k}": v for k, v in stats["dropped"].items()},
                **{f"flag_{f}": v["all"] for f, v in stats["flags"].items()}},
        timings={"total": time.time() - t0},
    )
