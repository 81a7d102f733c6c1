"""`ssd analyze`: where did self-distillation change the model? Lock and fork positions, base vs tuned.

The paper explains SSD by two kinds of positions in code. At a *lock* one token is right and a low-probability
tail of distractors remains; at a *fork* several continuations are good. Sampling with truncation (T_train,
top-k, top-p) and training on the result should cut the tail at locks and keep the diversity at forks. This
stage measures that on the user's own models: both are teacher-forced on the same (prompt, response) texts
(by default the run's held-out samples, which neither trained on; as the sampled token ids, where the rows carry
them, so the positions are the ones the model drew), and every response token gets, per model:

- `entropy`: entropy (nats) of the model's distribution at T = 1;
- `top1`, `logprob`, `rank`: top-1 probability, log-probability and rank (1 = top) of the actual token;
- `support`: size of the sampling support: the tokens transformers' own temperature -> top-k -> top-p ->
  min-p warpers keep at the run's sampling settings (what SSD's training data was drawn from);
- `tail_mass`: the T = 1 probability outside that support;

and, per position, KL(tuned || base) at T = 1, split exactly into three parts over the base's support S:
`kl_tail_mass` = KL between the Bernoulli masses (q(S), p(S)) (mass moved into or out of the tail),
`kl_within_support` = q(S) KL(q|S || p|S) (reshaping inside the support), and `kl_within_tail` (the rest).
`tuned_mass_outside_base_support` = 1 - q(S).

Classes. The rule needs only the base model: a position is a `lock` when the base's top-1 probability is at
least `analyze.lock_threshold` (0.8: its nucleus at top-p 0.8 holds one token), else a `fork`. When texts
carry ground-truth spans (the testbed's references do: `[start, end, "lock"|"fork"]` character spans of the
response), positions also get `gt_class`: `fork` for the token where a fork span's first non-space character
starts (the decision point), `lock` for tokens inside lock spans, `other` otherwise; the summary then reports
how well the rule agrees with ground truth at several thresholds.

Outputs: `tokens.parquet` (one row per response token; `--csv` adds tokens.csv), `summary.json` (per class:
share, mean entropy / tail mass / support / top-1 before and after, KL parts, and the two findings with
text-level bootstrap CIs), `plots/{entropy,tail_mass,tokens}.png`, `manifest.json`. Memory stays bounded: a
forward pass holds at most `analyze.batch_tokens` tokens, and full-vocabulary tensors live for one chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .config import SSDConfig, reads, to_dict
from .io import InputError, fingerprint_path, output_dir, read_jsonl
from .sampling.control import sampling_support
from .stage import Stage

log = logging.getLogger(__name__)

MODELS = ("base", "tuned")
PER_MODEL = ("entropy", "top1", "logprob", "rank", "support", "tail_mass")
KL_PARTS = ("kl", "kl_tail_mass", "kl_within_support", "kl_within_tail", "tuned_mass_outside_base_support")
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# A finding needs this much data: a bootstrap over fewer texts than MIN_TEXTS resamples a handful of clusters (one
# text gives a zero-width "CI"), and fewer than MIN_POSITIONS lock or fork positions leave the class mean to noise.
# Below either, the statement is "too few texts to tell" and fell/kept are None.
MIN_TEXTS = 8
MIN_POSITIONS = 100
FORK_ENTROPY_KEPT = 0.9  # "fork entropy kept": the tuned model keeps at least this share of the base's


@dataclass
class Text:
    user: str
    response: str
    id: str
    spans: list | None = None
    context: list[dict] | None = None  # the messages before the response, when more than the user turn
    prompt_ids: list[int] | None = None  # token-exact texts: the ids the sampler fed the model and drew
    response_ids: list[int] | None = None
    stopped: bool = False  # response_ids end with the stop token the model drew


def read_texts(path: str | Path, limit: int | None = None) -> list[Text]:
    """JSONL rows of `{"messages": [..., assistant]}` (train.jsonl / heldout.jsonl: with `prompt_ids` and
    `completion_ids`, those are teacher-forced as they are) or sample records (`prompt`, `output`, and their
    `messages`, `prompt_token_ids`, `completion_token_ids` when they have them); optional `spans` (ground truth)
    and `prompt_id`/`id`."""
    texts = []
    for lineno, r in read_jsonl(path):
        where = f"{path}:{lineno}"
        if "messages" in r and "output" not in r:
            msgs = r["messages"]
            if (not isinstance(msgs, list) or len(msgs) < 2 or not all(isinstance(m, dict) for m in msgs)
                    or msgs[-1].get("role") != "assistant" or msgs[-2].get("role") != "user"):
                raise InputError(f"{where}: field 'messages' must be chat messages ending [..., user, assistant]")
            context, response = msgs[:-1], msgs[-1].get("content")
            prompt_ids, response_ids = r.get("prompt_ids"), r.get("completion_ids")
        elif "prompt" in r and "output" in r:
            context, response = r.get("messages") or [{"role": "user", "content": r["prompt"]}], r["output"]
            prompt_ids, response_ids = r.get("prompt_token_ids"), r.get("completion_token_ids")
        else:
            raise InputError(f"{where}: expected field 'messages' ([..., user, assistant]) or fields 'prompt' and 'output'")
        if not isinstance(response, str) or not all(isinstance(m.get("content"), str) for m in context):
            raise InputError(f"{where}: field 'messages' must hold string contents")
        for name, ids in (("prompt_ids", prompt_ids), ("completion_ids", response_ids)):
            if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and t >= 0 for t in ids)):
                raise InputError(f"{where}: field '{name}' must be a list of token ids")
        if (prompt_ids is None) != (response_ids is None) or response_ids == []:
            prompt_ids = response_ids = None
        spans = r.get("spans")
        if spans is not None and (not isinstance(spans, list) or not all(
                isinstance(s, list) and len(s) == 3 and s[2] in ("lock", "fork") and 0 <= s[0] <= s[1] <= len(response)
                for s in spans)):
            raise InputError(f"{where}: field 'spans' must be a list of [start, end, 'lock'|'fork'] within the response")
        texts.append(Text(context[-1]["content"], response, str(r.get("prompt_id", r.get("id", f"line-{lineno}"))), spans,
                          context if len(context) > 1 else None, prompt_ids, response_ids, r.get("finish_reason") == "stop"))
        if limit and len(texts) >= limit:
            break
    if not texts:
        raise InputError(f"{path}: no texts to analyse")
    return texts


# ---------------------------------------------------------------------------------------------------------
# Statistics of one chunk of positions (pure torch; tested on hand-built distributions)


def position_stats(base_logits, tuned_logits, targets, temperature: float, top_k: int, top_p: float,
                   min_p: float = 0.0) -> dict:
    """[N, V] logits of both models and [N] actual tokens -> {column: [N] tensor} (see the module doc)."""
    import torch

    out = {}
    logp = {}
    supports = {}
    for name, logits in (("base", base_logits), ("tuned", tuned_logits)):
        logits = logits.float()
        lp = torch.log_softmax(logits, -1)
        p = lp.exp()
        actual = lp.gather(-1, targets[:, None])[:, 0]
        s = sampling_support(logits, temperature, top_k, top_p, min_p)
        out[f"entropy_{name}"] = -(p * lp.clamp_min(-1e30)).sum(-1)
        out[f"top1_{name}"] = p.max(-1).values
        out[f"logprob_{name}"] = actual
        out[f"rank_{name}"] = (lp > actual[:, None]).sum(-1) + 1
        out[f"support_{name}"] = s.sum(-1)
        out[f"tail_mass_{name}"] = (1 - (p * s).sum(-1)).clamp_min(0)
        logp[name], supports[name] = lp, s
    lq, lp = logp["tuned"], logp["base"]
    q = lq.exp()
    s = supports["base"]
    pointwise = q * (lq - lp)
    qs = (q * s).sum(-1).clamp(0, 1)
    ps = (lp.exp() * s).sum(-1).clamp(0, 1)

    def xlogy(x, y):  # x log(x / y) with 0 log 0 = 0
        return torch.where(x > 0, x * (torch.log(x.clamp_min(1e-38)) - torch.log(y.clamp_min(1e-38))), torch.zeros_like(x))

    bern = xlogy(qs, ps) + xlogy(1 - qs, 1 - ps)
    out["kl"] = pointwise.sum(-1)
    out["kl_tail_mass"] = bern
    out["kl_within_support"] = (pointwise * s).sum(-1) - xlogy(qs, ps)
    out["kl_within_tail"] = (pointwise * ~s).sum(-1) - xlogy(1 - qs, 1 - ps)
    out["tuned_mass_outside_base_support"] = 1 - qs
    return out


# ---------------------------------------------------------------------------------------------------------
# Tokenising texts as training saw them


def tokenize_text(tokenizer, text: Text) -> dict:
    """Prompt ids and response ids as training saw them, with each response token's character span in the
    response content. A token-exact text (ids recorded by the sampler) is its ids; a text-only one is the
    sampler's chat rendering, then what the chat template appends for the assistant turn, end-of-turn included
    (as TRL's prompt-completion training sees it)."""
    from .chat import decode, render

    context = text.context or [{"role": "user", "content": text.user}]
    if text.prompt_ids is not None:
        ids = text.response_ids
        offsets = _offsets(tokenizer, ids[:-1] if text.stopped else ids, text.response)
        offsets += [(len(text.response), len(text.response))] * (len(ids) - len(offsets))
        pieces = [text.response[a:b] if b > a else decode(tokenizer, [t]) or tokenizer.convert_ids_to_tokens(t)
                  for t, (a, b) in zip(ids, offsets)]
        return {"prompt_ids": text.prompt_ids, "response_ids": ids, "offsets": offsets, "pieces": pieces}
    prompt = render(tokenizer, context)
    full = tokenizer.apply_chat_template(context + [{"role": "assistant", "content": text.response}], tokenize=False)
    rest = full[len(prompt):] if full.startswith(prompt) else text.response + (tokenizer.eos_token or "")
    shift = rest.find(text.response) if text.response else 0
    shift = max(shift, 0)
    enc = tokenizer(rest, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [(a - shift, b - shift) for a, b in enc["offset_mapping"]]
    return {"prompt_ids": tokenizer(prompt, add_special_tokens=False)["input_ids"], "response_ids": enc["input_ids"],
            "offsets": offsets, "pieces": [rest[a:b] for a, b in enc["offset_mapping"]]}


def _offsets(tokenizer, ids: list[int], response: str) -> list[tuple[int, int]]:
    """Each drawn token's character span in the response (its decoded text): the tokenizer's own offsets when the
    response encodes back to these ids (the usual case), else the growth of the decoded prefix token by token."""
    from .chat import decode

    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    if enc["input_ids"] == ids:
        return [tuple(o) for o in enc["offset_mapping"]]
    pieces = [decode(tokenizer, [t]) for t in ids]
    if "".join(pieces) == response:  # every token decodes to whole characters on its own
        offsets, end = [], 0
        for piece in pieces:
            offsets.append((end, end + len(piece)))
            end += len(piece)
        return offsets
    offsets, end = [], 0
    for i in range(len(ids)):
        new = min(len(decode(tokenizer, ids[: i + 1])), len(response))
        offsets.append((end, max(new, end)))
        end = max(new, end)
    return offsets


def ground_truth(offsets: list[tuple[int, int]], spans: list, response: str) -> list[str]:
    """Per token: fork (where a fork span's first non-space character is), lock (inside a lock span), other."""
    labels = ["other"] * len(offsets)
    for start, end, kind in spans:
        if kind == "lock":
            lo, hi = start, end
            while lo < hi and response[lo].isspace():
                lo += 1
            while hi > lo and response[hi - 1].isspace():
                hi -= 1
            for i, (a, b) in enumerate(offsets):
                if a < hi and b > lo and labels[i] != "fork":
                    labels[i] = "lock"
    for start, end, kind in spans:
        if kind == "fork":
            c = start
            while c < end and response[c].isspace():
                c += 1
            for i, (a, b) in enumerate(offsets):
                if a <= c < b:
                    labels[i] = "fork"
                    break
    return labels


# ---------------------------------------------------------------------------------------------------------
# The stage


def analyze_inputs(cfg: SSDConfig, base: str, tuned: str, texts: str | Path) -> tuple[dict, dict]:
    """(config, input hashes): what decides whether a finished analysis can be reused."""
    inputs = {"base": fingerprint_path(base), "tuned": fingerprint_path(tuned), "texts": fingerprint_path(texts)}
    s = cfg.sample
    config = {"analyze": to_dict(cfg.analyze),
              "support": {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p, "min_p": s.min_p},
              "model": to_dict(cfg.model)}
    return config, inputs


def _batches(items: list[dict], budget: int) -> list[list[int]]:
    """Indices grouped so each padded batch holds at most `budget` tokens (a longer text goes alone)."""
    order = sorted(range(len(items)), key=lambda i: -items[i]["length"])
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * items[cur[0]]["length"] > budget:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def _model_cfg(cfg: SSDConfig, path: str):
    from dataclasses import replace

    return replace(cfg.model, name_or_path=str(path))


def teacher_force(cfg: SSDConfig, base: str, tuned: str, texts: list[Text], progress: bool = True):
    """Both models over every response token -> a pandas DataFrame, one row per token."""
    import numpy as np
    import pandas as pd
    import torch

    from .models import load_model, load_tokenizer, resolve_device
    from .progress import bar as progress_bar

    device = resolve_device(cfg.analyze.device)
    tok = load_tokenizer(_model_cfg(cfg, base))
    models = {"base": load_model(_model_cfg(cfg, base), device), "tuned": load_model(_model_cfg(cfg, tuned), device)}
    if models["base"].config.vocab_size != models["tuned"].config.vocab_size:
        raise InputError(f"{tuned}: vocabulary size {models['tuned'].config.vocab_size} differs from the base's "
                         f"{models['base'].config.vocab_size}; analyze compares a model with its own fine-tune")
    items = []
    for t in texts:
        enc = tokenize_text(tok, t)
        enc["length"] = len(enc["prompt_ids"]) + len(enc["response_ids"])
        items.append(enc)
    s = cfg.sample
    vocab = models["base"].config.vocab_size
    chunk = max(1, (1 << 24) // vocab)  # positions per full-vocabulary chunk (~64 MB per float32 tensor)
    columns: dict[str, list] = {}
    bar = progress_bar(sum(len(it["response_ids"]) for it in items), "analyze", "token", progress)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for batch in _batches(items, cfg.analyze.batch_tokens):
        width = max(items[i]["length"] for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols, targets = [], [], []
        for b, i in enumerate(batch):
            seq = items[i]["prompt_ids"] + items[i]["response_ids"]
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
            start = len(items[i]["prompt_ids"])
            rows += [b] * len(items[i]["response_ids"])
            cols += list(range(start - 1, len(seq) - 1))  # the logits at p predict token p + 1
            targets += items[i]["response_ids"]
        ids, mask = ids.to(device), mask.to(device)
        rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        targets_t = torch.tensor(targets, device=device)
        with torch.inference_mode():
            logits = {name: m(input_ids=ids, attention_mask=mask, use_cache=False).logits[rows_t, cols_t]
                      for name, m in models.items()}
            for a in range(0, len(targets), chunk):
                st = position_stats(logits["base"][a:a + chunk], logits["tuned"][a:a + chunk], targets_t[a:a + chunk],
                                    s.temperature, s.top_k, s.top_p, s.min_p)
                for k, v in st.items():
                    columns.setdefault(k, []).append(v.cpu().numpy())
        del logits
        for i in batch:
            it, t = items[i], texts[i]
            n = len(it["response_ids"])
            gt = ground_truth(it["offsets"], t.spans, t.response) if t.spans is not None else [None] * n
            columns.setdefault("text_index", []).append(np.full(n, i))
            columns.setdefault("text_id", []).append(np.array([t.id] * n, dtype=object))
            columns.setdefault("position", []).append(np.arange(n))
            columns.setdefault("token_id", []).append(np.array(it["response_ids"]))
            columns.setdefault("token", []).append(np.array(it["pieces"], dtype=object))
            columns.setdefault("char_start", []).append(np.array([a for a, _ in it["offsets"]]))
            columns.setdefault("char_end", []).append(np.array([b for _, b in it["offsets"]]))
            columns.setdefault("gt_class", []).append(np.array(gt, dtype=object))
            bar.update(n)
    bar.close()
    df = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    df["class"] = np.where(df["top1_base"] >= cfg.analyze.lock_threshold, "lock", "fork")
    lead = ["text_index", "text_id", "position", "token_id", "token", "char_start", "char_end", "class", "gt_class"]
    return df[lead + [c for c in df.columns if c not in lead]].sort_values(["text_index", "position"], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Summary


def _class_stats(df, total: int) -> dict:
    out = {"positions": int(len(df)), "share": len(df) / total if total else 0.0}
    for col in PER_MODEL:
        for m in MODELS:
            out[f"{col}_{m}"] = float(df[f"{col}_{m}"].mean()) if len(df) else None
    for col in KL_PARTS:
        out[col] = float(df[col].mean()) if len(df) else None
    return out


def clustered_change(df, col: str, reps: int = 1000, seed: int = 0) -> dict:
    """Mean of `col`_tuned - `col`_base over positions, with a bootstrap 95 % CI that resamples whole texts
    (positions of one text are not independent)."""
    import numpy as np

    if not len(df):
        return {"base": None, "tuned": None, "change": None, "ci95": [None, None], "texts": 0}
    g = df.assign(d=df[f"{col}_tuned"] - df[f"{col}_base"]).groupby("text_index")["d"].agg(["sum", "count"])
    sums, counts = g["sum"].to_numpy(), g["count"].to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(reps, len(sums)))
    boot = sums[idx].sum(1) / counts[idx].sum(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"base": float(df[f"{col}_base"].mean()), "tuned": float(df[f"{col}_tuned"].mean()),
            "change": float(sums.sum() / counts.sum()), "ci95": [float(lo), float(hi)], "texts": int(len(sums))}


def agreement(df) -> dict:
    """Rule vs ground truth on the positions ground truth labels lock or fork, for several thresholds."""
    lab = df[df["gt_class"].isin(["lock", "fork"])]
    if not len(lab):
        return {}
    gt_fork = (lab["gt_class"] == "fork").to_numpy()
    rows = []
    rules = [(f"top1 < {t}", lab["top1_base"].to_numpy() < t, t) for t in THRESHOLDS]
    rules.append(("sampling support >= 2", lab["support_base"].to_numpy() >= 2, None))
    for name, pred_fork, t in rules:
        tp = int((pred_fork & gt_fork).sum())
        fp = int((pred_fork & ~gt_fork).sum())
        fn = int((~pred_fork & gt_fork).sum())
        tn = int((~pred_fork & ~gt_fork).sum())
        n = tp + fp + fn + tn
        acc = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        rows.append({"rule": name, "threshold": t, "fork_recall": tp / max(tp + fn, 1),
                     "lock_recall": tn / max(tn + fp, 1), "fork_precision": tp / max(tp + fp, 1),
                     "accuracy": acc, "balanced_accuracy": (tp / max(tp + fn, 1) + tn / max(tn + fp, 1)) / 2,
                     "cohen_kappa": (acc - pe) / (1 - pe) if pe < 1 else 0.0,
                     "confusion": {"fork_as_fork": tp, "lock_as_fork": fp, "fork_as_lock": fn, "lock_as_lock": tn}})
    return {"positions": int(len(lab)), "ground_truth_forks": int(gt_fork.sum()),
            "ground_truth_locks": int((~gt_fork).sum()), "by_rule": rows,
            "best_kappa": max(rows, key=lambda r: r["cohen_kappa"])["rule"],
            "mean_top1_base": {c: float(lab[lab["gt_class"] == c]["top1_base"].mean()) for c in ("lock", "fork")}}


def summarize(df, cfg: SSDConfig) -> dict:
    total = len(df)
    out = {"texts": int(df["text_index"].nunique()), "tokens": int(total),
           "support": {"temperature": cfg.sample.temperature, "top_k": cfg.sample.top_k, "top_p": cfg.sample.top_p,
                       "min_p": cfg.sample.min_p},
           "rule": {"lock_threshold": cfg.analyze.lock_threshold,
                    "definition": f"lock: base top-1 probability (T=1) >= {cfg.analyze.lock_threshold}; else fork"},
           "by_class": {c: _class_stats(df[df["class"] == c], total) for c in ("lock", "fork")}}
    out["by_class"]["all"] = _class_stats(df, total)
    out["findings"] = findings(df, "class")
    if df["gt_class"].notna().any():
        labelled = df[df["gt_class"].notna()]
        out["by_ground_truth"] = {c: _class_stats(labelled[labelled["gt_class"] == c], len(labelled))
                                  for c in ("lock", "fork", "other")}
        out["findings_ground_truth"] = findings(labelled, "gt_class")
        out["agreement"] = agreement(labelled)
    return out


def findings(df, column: str) -> dict:
    """The two claims, measured: did the tail mass at locks fall, and was the entropy at forks kept? Stated only
    with at least MIN_TEXTS texts and MIN_POSITIONS positions of each class."""
    lock, fork = df[df[column] == "lock"], df[df[column] == "fork"]
    tail = clustered_change(lock, "tail_mass")
    ent = clustered_change(fork, "entropy")
    lock_ent = clustered_change(lock, "entropy")
    ratio = ent["tuned"] / ent["base"] if ent["base"] else None
    lock_ratio = lock_ent["tuned"] / lock_ent["base"] if lock_ent["base"] else None
    data = {"texts": int(df["text_index"].nunique()) if len(df) else 0, "lock_positions": int(len(lock)),
            "fork_positions": int(len(fork)), "min_texts": MIN_TEXTS, "min_positions": MIN_POSITIONS}
    data["enough"] = (data["texts"] >= MIN_TEXTS and tail["texts"] >= MIN_TEXTS and ent["texts"] >= MIN_TEXTS
                      and len(lock) >= MIN_POSITIONS and len(fork) >= MIN_POSITIONS)
    enough = data["enough"]
    return {
        "data": data,
        "lock_tail_mass": {**tail, "fell": (tail["ci95"][1] < 0) if enough else None},
        "fork_entropy": {**ent, "retained": ratio, "kept": (ratio >= FORK_ENTROPY_KEPT) if enough else None},
        "lock_entropy": {**lock_ent, "retained": lock_ratio},
        "statement": _statement(tail, ent, ratio, column, data),
    }


def _statement(tail: dict, ent: dict, ratio, column: str, data: dict) -> str:
    if not data["enough"]:
        by = "by the rule" if column == "class" else "by ground truth"
        return (f"too few texts to tell: {data['texts']} texts with {data['lock_positions']} lock and "
                f"{data['fork_positions']} fork positions ({by}); a finding needs at least {MIN_TEXTS} texts and "
                f"{MIN_POSITIONS} positions of each class (more held-out samples: filter.holdout_fraction, "
                "analyze.max_texts, or --texts)")
    verb = "fell" if tail["ci95"][1] < 0 else "rose" if tail["ci95"][0] > 0 else "did not change significantly"
    kept = "kept" if ratio >= FORK_ENTROPY_KEPT else "not kept"
    return (f"lock tail mass {verb}: {tail['base']:.4f} -> {tail['tuned']:.4f} ({tail['change']:+.4f}, 95% CI "
            f"{tail['ci95'][0]:+.4f} to {tail['ci95'][1]:+.4f}); fork entropy {kept}: {ent['base']:.3f} -> "
            f"{ent['tuned']:.3f} nats ({ratio:.0%} retained, 95% CI of the change {ent['ci95'][0]:+.3f} to "
            f"{ent['ci95'][1]:+.3f})")


@reads("model", "sample", "analyze")
def analyze(cfg: SSDConfig, base: str, tuned: str, texts_path: str | Path, out_dir: str | Path, *,
            progress: bool = True, overwrite: bool = False, csv: bool = False) -> dict:
    """Teacher-forces base and tuned on the texts and writes the per-token table, the summary and the plots. A
    directory holding another analysis is refused unless `overwrite`."""
    from .models import check_model_files
    from .plots import analysis_plots

    out_dir = output_dir(out_dir)
    texts_path = Path(texts_path)
    config, inputs = analyze_inputs(cfg, base, tuned, texts_path)
    st = Stage("analyze", out_dir, config, inputs, work=("tokens.parquet", "tokens.csv", "summary.json", "plots"))
    if st.finished():
        return st.manifest
    texts = read_texts(texts_path, cfg.analyze.max_texts)  # the inputs checked before anything is written
    for model in (base, tuned):
        check_model_files(_model_cfg(cfg, model))
    st.claim(overwrite)
    st.restart_clock()
    df = teacher_force(cfg, base, tuned, texts, progress=progress)
    st.lap("teacher_force")
    summary = summarize(df, cfg)
    summary.update({"base": str(base), "tuned": str(tuned), "texts_file": str(texts_path)})
    with st.output("tokens.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    st.write_json("summary.json", summary)
    if csv:
        with st.output("tokens.csv") as tmp:
            df.to_csv(tmp, index=False)
    st.outputs += [f"plots/{p.name}" for p in analysis_plots(df, summary, st.out_dir / "plots", cfg.analyze.examples)]
    return st.finish({"texts": summary["texts"], "tokens": summary["tokens"],
                      **{f"{c}_positions": summary["by_class"][c]["positions"] for c in ("lock", "fork")}},
                     extra={"paths": {"base": str(base), "tuned": str(tuned), "texts": str(texts_path)}})
