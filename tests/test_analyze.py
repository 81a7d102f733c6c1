"""`ssd analyze`: statistics on hand-built distributions with known answers, ground-truth labels, the rule's
agreement with the testbed's spans, and the stage end to end on the shipped model."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import read_jsonl, ssd

from simplesd.analyze import agreement, clustered_change, ground_truth, position_stats, read_texts
from simplesd.io import InputError
from simplesd.sampling.control import sampling_support

PROBS = [0.5, 0.3, 0.1, 0.05, 0.03, 0.02]


def _logits(probs):
    return torch.log(torch.tensor([probs], dtype=torch.float64)).float()


def test_support_follows_temperature_then_top_k_then_top_p():
    lg = _logits(PROBS)
    # T=1, top-p 0.8: 0.5 + 0.3 reaches 0.8 -> two tokens; top-p 0.81 needs the third
    assert sampling_support(lg, 1.0, 0, 0.8, 0.0)[0].tolist() == [True, True, False, False, False, False]
    assert sampling_support(lg, 1.0, 0, 0.81, 0.0).sum().item() == 3
    # top-k 1 leaves only the arg-max whatever top-p says; greedy is the arg-max
    assert sampling_support(lg, 1.0, 1, 1.0, 0.0).sum().item() == 1
    assert sampling_support(lg, 0.0, 20, 0.8, 0.0)[0].tolist() == [True] + [False] * 5
    # T=1.5 flattens before top-p: p^(1/1.5) renormalised, then the smallest prefix reaching 0.8
    flat = np.array(PROBS) ** (1 / 1.5)
    flat /= flat.sum()
    need = int(np.searchsorted(np.cumsum(flat), 0.8) + 1)
    assert sampling_support(lg, 1.5, 0, 0.8, 0.0).sum().item() == need == 3  # T=1 gave 2
    # top-k 3 first, then top-p renormalises over those three: .49 + .35 reaches 0.8 -> two
    assert sampling_support(lg, 1.5, 3, 0.8, 0.0).sum().item() == 2
    # min-p 0.5 keeps tokens with at least half the top token's probability
    assert sampling_support(lg, 1.0, 0, 1.0, 0.5)[0].tolist() == [True, True, False, False, False, False]


def test_position_stats_on_known_distributions():
    base = _logits(PROBS)
    target = torch.tensor([1])
    same = position_stats(base, base.clone(), target, 1.0, 0, 0.8)
    entropy = -sum(p * math.log(p) for p in PROBS)
    assert same["entropy_base"].item() == pytest.approx(entropy, abs=1e-5)
    assert same["top1_base"].item() == pytest.approx(0.5, abs=1e-6)
    assert same["logprob_base"].item() == pytest.approx(math.log(0.3), abs=1e-5)
    assert same["rank_base"].item() == 2 and same["support_base"].item() == 2
    assert same["tail_mass_base"].item() == pytest.approx(0.2, abs=1e-6)
    for k in ("kl", "kl_tail_mass", "kl_within_support", "kl_within_tail"):
        assert abs(same[k].item()) < 1e-6

    # the tuned model moves half the tail's mass into the support, proportionally: pure tail-mass change
    tuned = [p * 0.9 / 0.8 for p in PROBS[:2]] + [p * 0.1 / 0.2 for p in PROBS[2:]]
    st = position_stats(base, _logits(tuned), target, 1.0, 0, 0.8)
    bern = 0.9 * math.log(0.9 / 0.8) + 0.1 * math.log(0.1 / 0.2)
    assert st["kl"].item() == pytest.approx(bern, abs=1e-5)
    assert st["kl_tail_mass"].item() == pytest.approx(bern, abs=1e-5)
    assert abs(st["kl_within_support"].item()) < 1e-5 and abs(st["kl_within_tail"].item()) < 1e-5
    assert st["tuned_mass_outside_base_support"].item() == pytest.approx(0.1, abs=1e-5)
    assert st["tail_mass_tuned"].item() == pytest.approx(0.1, abs=1e-5)

    # reshaping inside the support only (same support mass): pure within-support change
    tuned = [0.6, 0.2] + PROBS[2:]
    st = position_stats(base, _logits(tuned), target, 1.0, 0, 0.8)
    within = 0.8 * (0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375))
    assert st["kl_within_support"].item() == pytest.approx(within, abs=1e-5)
    assert abs(st["kl_tail_mass"].item()) < 1e-6 and abs(st["kl_within_tail"].item()) < 1e-5
    assert st["kl"].item() == pytest.approx(within, abs=1e-5)


def test_kl_parts_sum_to_the_kl_on_random_logits():
    g = torch.Generator().manual_seed(0)
    base, tuned = torch.randn(64, 50, generator=g) * 3, torch.randn(64, 50, generator=g) * 3
    targets = torch.randint(0, 50, (64,), generator=g)
    st = position_stats(base, tuned, targets, 1.5, 20, 0.8)
    parts = st["kl_tail_mass"] + st["kl_within_support"] + st["kl_within_tail"]
    assert torch.allclose(parts, st["kl"], atol=1e-4)
    direct = (torch.softmax(tuned, -1) * (torch.log_softmax(tuned, -1) - torch.log_softmax(base, -1))).sum(-1)
    assert torch.allclose(st["kl"], direct, atol=1e-4)
    assert (st["kl"] >= -1e-6).all() and (st["kl_tail_mass"] >= -1e-6).all()
    assert ((st["rank_base"] >= 1) & (st["rank_base"] <= 50)).all()
    assert ((st["support_base"] >= 1) & (st["support_base"] <= 20)).all()


def test_ground_truth_marks_the_fork_decision_token_and_lock_tokens():
    response = "for x in nums:\n    y = x + 7"
    offsets = [(0, 3), (3, 5), (5, 8), (8, 13), (13, 15), (15, 19), (19, 20), (20, 22), (22, 24), (24, 26), (26, 28)]
    spans = [[3, 5, "fork"], [15, 20, "fork"], [22, 28, "lock"]]  # " x" and "    y": the decision is at x, y
    labels = ground_truth(offsets, spans, response)
    assert labels == ["other", "fork", "other", "other", "other", "other", "fork", "other", "lock", "lock", "lock"]


def test_agreement_and_clustered_change_numbers():
    df = pd.DataFrame({"gt_class": ["fork", "fork", "lock", "lock", "lock", "other"],
                       "top1_base": [0.3, 0.55, 0.95, 0.65, 0.99, 0.5], "support_base": [3, 2, 1, 2, 1, 4]})
    a = agreement(df)
    row = next(r for r in a["by_rule"] if r["rule"] == "top1 < 0.8")
    assert row["confusion"] == {"fork_as_fork": 2, "lock_as_fork": 1, "fork_as_lock": 0, "lock_as_lock": 2}
    assert row["fork_recall"] == 1 and row["lock_recall"] == pytest.approx(2 / 3)
    assert row["cohen_kappa"] == pytest.approx((0.8 - 0.48) / (1 - 0.48))
    assert a["positions"] == 5 and a["ground_truth_forks"] == 2
    best = next(r for r in a["by_rule"] if r["rule"] == a["best_kappa"])
    assert a["best_kappa"] == "top1 < 0.6" and best["cohen_kappa"] == 1.0  # separates them exactly

    # change of the mean over positions, CI from resampling whole texts
    d = pd.DataFrame({"text_index": [0, 0, 1, 1, 2], "tail_mass_base": [0.2, 0.2, 0.1, 0.1, 0.3],
                      "tail_mass_tuned": [0.1, 0.1, 0.1, 0.1, 0.0]})
    c = clustered_change(d, "tail_mass")
    assert c["change"] == pytest.approx(-0.5 / 5) and c["texts"] == 3
    assert c["ci95"][0] <= c["change"] <= c["ci95"][1] and c["ci95"][1] <= 0


def test_read_texts_formats_and_errors(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                 + "\n" + json.dumps({"prompt": "q2", "output": "a2", "prompt_id": "x"}) + "\n")
    texts = read_texts(p)
    assert [(t.user, t.response, t.id) for t in texts] == [("q", "a", "line-1"), ("q2", "a2", "x")]
    p.write_text(json.dumps({"prompt": "q", "output": "abc", "spans": [[0, 9, "lock"]]}) + "\n")
    with pytest.raises(InputError, match=r"t.jsonl:1: field 'spans'"):
        read_texts(p)
    p.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(InputError, match=r"t.jsonl:1: expected field 'messages'"):
        read_texts(p)


def _reference_texts(tmp_path, n_problems=6):
    from simplesd.testbed.artefacts import shipped_base, verify_base, write_splits
    from simplesd.testbed.demo import reference_texts

    data = write_splits(verify_base(shipped_base()), tmp_path / "data", names=("dev",))
    dev = tmp_path / "dev6.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in read_jsonl(data["dev"])[:n_problems]))
    return reference_texts(dev, tmp_path / "refs.jsonl")


def test_analyze_command_on_the_shipped_model(tmp_path):
    """Base against itself: every change is zero; the lock/fork rule agrees with the testbed's ground truth."""
    from simplesd.testbed.artefacts import shipped_base

    refs = _reference_texts(tmp_path, n_problems=24)  # 48 texts: enough fork positions for a finding (MIN_POSITIONS)
    base = shipped_base()
    out = tmp_path / "an"
    r = ssd("analyze", "--base", base, "--tuned", base, "--texts", refs, "--out", out, "--no-progress", "--csv",
            check=True)
    assert "lock tail mass did not change significantly" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    df = pd.read_parquet(out / "tokens.parquet")
    assert len(pd.read_csv(out / "tokens.csv")) == len(df) == s["tokens"]
    assert s["texts"] == 48 and df["text_index"].nunique() == 48
    assert np.allclose(df["kl"], 0, atol=1e-5) and (df["entropy_base"] == df["entropy_tuned"]).all()
    # the response tokens spell the response, end-of-turn included, as training sees it
    first = read_jsonl(refs)[0]["messages"][1]["content"]
    assert "".join(df[df["text_index"] == 0]["token"]).startswith(first)
    assert ((df["tail_mass_base"] >= 0) & (df["tail_mass_base"] <= 1)).all() and (df["rank_base"] >= 1).all()
    assert set(df["class"]) == {"lock", "fork"} and set(df["gt_class"]) == {"lock", "fork", "other"}
    # on the testbed the base-only rule finds the ground-truth forks and locks
    row = next(x for x in s["agreement"]["by_rule"] if x["rule"] == "top1 < 0.8")
    assert row["fork_recall"] > 0.8 and row["lock_recall"] > 0.9 and row["cohen_kappa"] > 0.6
    assert s["agreement"]["mean_top1_base"]["lock"] > 0.9 > s["agreement"]["mean_top1_base"]["fork"]
    f = s["findings"]
    assert f["lock_tail_mass"]["change"] == 0 and not f["lock_tail_mass"]["fell"] and f["fork_entropy"]["kept"]
    for png in ("entropy.png", "tail_mass.png", "tokens.png"):
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["tokens"] == len(df) and m["inputs"]["base"] == m["inputs"]["tuned"]
    # a rerun with the same inputs is skipped; bad texts exit 2 with one line naming file, line and field
    assert ssd("analyze", "--base", base, "--tuned", base, "--texts", refs, "--out", out, "--no-progress").returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    r = ssd("analyze", "--base", base, "--tuned", base, "--texts", bad, "--out", tmp_path / "b")
    assert r.returncode == 2 and f"{bad}:1: field 'messages'" in r.stderr and not (tmp_path / "b").exists()
    # too few texts: no finding is stated, whatever the numbers (one text's bootstrap "CI" has zero width)
    one = tmp_path / "one.jsonl"
    one.write_text(Path(refs).read_text().splitlines()[0] + "\n")
    r = ssd("analyze", "--base", base, "--tuned", base, "--texts", one, "--out", tmp_path / "one", "--no-progress",
            check=True)
    f = json.loads((tmp_path / "one" / "summary.json").read_text())["findings"]
    assert "too few texts to tell: 1 texts" in r.stdout and "95% CI" not in r.stdout
    assert f["data"]["enough"] is False and f["lock_tail_mass"]["fell"] is None and f["fork_entropy"]["kept"] is None
