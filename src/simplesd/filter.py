"""Step 2: filter, barely. No verifier, no tests, no teacher.

In order: drop empty outputs; optionally drop samples by their flags (truncated, looping, without a code block,
without a reasoning block: all off by default, as in the paper); optionally drop exact duplicate (prompt, output)
pairs; then drop the shortest `drop_shortest_fraction` of what remains (by output tokens, ties broken by input
order, floor(fraction x count) samples). Flags are the sampler's (`sampling.flags.sample_flags`); records written by
another tool without them get them from their text. Writes `train.jsonl` with one row per kept sample:
`messages` (the sampler's context, the user turn byte for byte, then the output as the assistant turn) and, when
the sampler recorded them (both backends do), `prompt_ids` and `completion_ids`: the token ids the model was fed
and drew, the stop token last when the sample ended by itself, which `ssd train` trains on as they are;
`stats.json` (kept / dropped by reason, flag counts, length histograms overall and per flag) and `manifest.json`.

Not in the paper: `holdout_fraction` of the kept prompts (chosen by a hash of the prompt id, so the same
prompts whatever the file order) go to `heldout.jsonl` instead of `train.jsonl`: the run's own samples that
neither model trained on, which `ssd analyze` teacher-forces by default.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import NamedTuple

from .config import FilterConfig, SSDConfig, reads, to_dict
from .io import InputError, fingerprint_path, output_dir
from .records import SampleRecord
from .sample import iter_samples
from .sampling.flags import FLAGS
from .stage import Stage

log = logging.getLogger(__name__)

class FlagRule(NamedTuple):
    """An optional rule on a sample's flag: when `switch` is on, drop the samples whose `flag` equals `drop_if`."""

    flag: str  # the record's flag
    switch: str  # the FilterConfig field that turns the rule on
    reason: str  # the drop reason stats.json counts
    drop_if: bool  # True: drop samples with the flag (truncated); False: drop those without it (no code block)


FLAG_RULES = (FlagRule("truncated", "drop_truncated", "truncated", drop_if=True),
              FlagRule("looping", "drop_looping", "looping", drop_if=True),
              FlagRule("has_code", "require_code_block", "no_code_block", drop_if=False),
              FlagRule("has_think", "require_think", "no_think", drop_if=False))
REASONS = ["empty", "truncated", "looping", "no_code_block", "no_think", "duplicate", "shortest"]


def histogram(values: list[int], bins: int = 20, edges: list[float] | None = None) -> dict:
    import numpy as np

    if edges is None:
        hi = max(values) if values else 1
        edges = np.linspace(0, max(hi, 1), bins + 1).tolist()
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [round(e, 2) for e in edges], "counts": counts.tolist()}


def select(records: list[SampleRecord], cfg: FilterConfig) -> tuple[list[int], dict[int, str]]:
    """Returns (indices kept in input order, {dropped index: reason})."""
    dropped: dict[int, str] = {}
    alive = list(range(len(records)))
    if cfg.drop_empty:
        for i in alive:
            if not records[i].output.strip():
                dropped[i] = "empty"
        alive = [i for i in alive if i not in dropped]
    for rule in FLAG_RULES:
        if getattr(cfg, rule.switch):
            for i in alive:
                if getattr(records[i], rule.flag) == rule.drop_if:
                    dropped[i] = rule.reason
            alive = [i for i in alive if i not in dropped]
    if cfg.dedup:
        seen = set()
        for i in alive:
            key = (records[i].prompt, records[i].output)
            if key in seen:
                dropped[i] = "duplicate"
            seen.add(key)
        alive = [i for i in alive if i not in dropped]
    k = math.floor(cfg.drop_shortest_fraction * len(alive))
    for i in sorted(alive, key=lambda i: (records[i].completion_tokens, i))[:k]:
        dropped[i] = "shortest"
    return [i for i in alive if i not in dropped], dropped


def heldout_prompts(prompt_ids: list[str], fraction: float) -> set[str]:
    """ceil(fraction x prompts) prompt ids, at least one when fraction > 0 and never all of them, ranked by a
    hash of the id (stable under reordering and resumes)."""
    unique = sorted(set(prompt_ids), key=lambda p: (hashlib.sha256(p.encode()).hexdigest(), p))
    if fraction <= 0 or len(unique) < 2:
        return set()
    return set(unique[: min(math.ceil(fraction * len(unique)), len(unique) - 1)])


@reads("filter")
def filter_samples(cfg: SSDConfig, samples: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> dict:
    """Filters `samples` (a `ssd sample` directory or a samples JSONL file) by cfg.filter into out_dir. A directory
    holding another config's or other inputs' train.jsonl is refused unless `overwrite`."""
    fcfg = cfg.filter
    out_dir = output_dir(out_dir)
    samples = Path(samples)
    if not samples.exists():
        raise InputError(f"{samples}: samples not found (a sample directory or a JSONL file)")
    st = Stage("filter", out_dir, to_dict(fcfg), {"samples": fingerprint_path(samples)},
               work=("train.jsonl", "heldout.jsonl"), bookkeeping=("stats.json",), section="filter")
    if st.finished():
        return st.manifest
    records = [r for _, r in iter_samples(samples)]
    if not records:
        raise InputError(f"{samples}: no samples to filter")
    kept, dropped = select(records, fcfg)
    if not kept:
        raise InputError(f"{samples}: every sample was filtered out ({len(dropped)} dropped); nothing to train on")

    held = heldout_prompts([records[i].prompt_id for i in kept], fcfg.holdout_fraction)
    st.claim(overwrite)

    # token-exact rows (the ids the sampler fed and drew, which `ssd train` trains on) when every kept sample has
    # them; records another tool wrote without ids make text rows, rendered again by the chat template in training
    exact = all(records[i].token_exact for i in kept)
    if not exact:
        log.warning("WARNING: %s: %d of %d kept samples carry no token ids (prompt_token_ids, completion_token_ids); "
                    "train.jsonl holds text, which training renders again with the chat template",
                    samples, sum(not records[i].token_exact for i in kept), len(kept))

    def rows(indices):
        for i in indices:
            r = records[i]
            row = {"messages": r.context() + [{"role": "assistant", "content": r.output}],
                   "prompt_id": r.prompt_id, "sample_index": r.sample_index, "finish_reason": r.finish_reason}
            if exact:
                row.update(prompt_ids=r.prompt_token_ids, completion_ids=r.completion_token_ids)
            yield row

    st.write_jsonl("train.jsonl", rows(i for i in kept if records[i].prompt_id not in held))
    st.write_jsonl("heldout.jsonl", rows(i for i in kept if records[i].prompt_id in held))

    lengths = [r.completion_tokens for r in records]
    all_hist = histogram(lengths)
    stats = {
        "total": len(records),
        "kept": len(kept),
        "dropped": {reason: sum(1 for v in dropped.values() if v == reason) for reason in REASONS},
        "flags": {f: {"all": sum(bool(getattr(r, f)) for r in records), "kept": sum(bool(getattr(records[i], f)) for i in kept)}
                  for f in FLAGS},
        "finish_reason": {fr: sum(1 for r in records if r.finish_reason == fr) for fr in ("stop", "length")},
        "kept_prompts": len({records[i].prompt_id for i in kept}),
        "held_out": sum(records[i].prompt_id in held for i in kept),
        "held_out_prompts": len(held),
        "length_tokens": {
            "all": all_hist,
            "kept": histogram([lengths[i] for i in kept], edges=all_hist["edges"]),
            "dropped": histogram([lengths[i] for i in dropped], edges=all_hist["edges"]),
            # samples with each flag, kept or not, on the same bins
            **{f: histogram([x for x, r in zip(lengths, records) if getattr(r, f)], edges=all_hist["edges"]) for f in FLAGS},
            "shortest_kept": min(lengths[i] for i in kept),
            "mean_kept": round(sum(lengths[i] for i in kept) / len(kept), 2),
        },
    }
    st.write_json("stats.json", stats)
    return st.finish(
        counts={"total": stats["total"], "kept": stats["kept"], "held_out": stats["held_out"],
                "train_rows": stats["kept"] - stats["held_out"], "token_exact_rows": stats["kept"] if exact else 0,
                **{f"dropped_{k}": v for k, v in stats["dropped"].items()},
                **{f"flag_{f}": v["all"] for f, v in stats["flags"].items()}},
    )
