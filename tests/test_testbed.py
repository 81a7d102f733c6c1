"""The testbed: task family (references pass, priors fail, spans, splits), the shipped base (checksums, it
codes), a reduced rebuild through the same pipeline, and `ssd demo`."""

import json
import random
import re

import pytest
from conftest import read_jsonl, ssd

from simplesd.config import read_yaml
from simplesd.testbed import tasks
from simplesd.testbed.artefacts import read_build_manifest, shipped_base, split_records, verify_base
from simplesd.testbed.build import REDUCED_YAML, load_build_config


@pytest.fixture(scope="module")
def sample_problems():
    splits = split_records(7, {"test": 40, "dev": 0, "ssd": 0, "pretrain": 40})
    return splits["test"] + splits["pretrain"]


def _grade(records, responses):
    from simplesd.config import EvalConfig
    from simplesd.evaluate import grade
    from simplesd.execute.benchmarks import _lcb_problem

    problems = [_lcb_problem(r, r["question_id"]) for r in records]
    rows, _ = grade(problems, responses, EvalConfig(workers=2), progress=False)
    return [r.verdict for r in rows]


def test_every_reference_style_passes_and_a_prior_alone_does_not(sample_problems):
    refs = [(r["question_id"], ref["response"]) for r in sample_problems for ref in r["testbed"]["references"]]
    assert {ref["style"] for r in sample_problems for ref in r["testbed"]["references"]} == {"loop", "helper", "script", "main"}
    assert _grade(sample_problems, refs) == ["passed"] * len(refs)
    priors = tasks.prior_baselines(sample_problems)
    for name in ("identity", "constant"):
        verdicts = _grade(sample_problems, [(r["question_id"], priors[r["question_id"]][name]) for r in sample_problems])
        assert verdicts.count("passed") == 0, name


def test_one_wrong_detail_fails_the_hidden_tests(sample_problems):
    """A pass needs the whole program: change one copied constant (a lock) and the tests catch it."""
    rng = random.Random(0)
    mutants = []
    for r in sample_problems:
        ref = r["testbed"]["references"][0]
        digits = [(a, b) for a, b, kind in ref["spans"] if kind == "lock" and ref["response"][a:b].isdigit()
                  and not ref["response"][:a].endswith("# rule ")]  # constants, not the rule-number comments
        a, b = rng.choice(digits)
        value = int(ref["response"][a:b])
        mutants.append((r["question_id"], ref["response"][:a] + str(value + rng.choice((1, 2, 3))) + ref["response"][b:]))
    verdicts = _grade(sample_problems, mutants)
    assert verdicts.count("passed") <= 0.1 * len(mutants), verdicts.count("passed")


def test_spans_mark_the_copied_details_and_the_style_choices(sample_problems):
    for r in sample_problems:
        q = r["question_content"]
        for ref in r["testbed"]["references"]:
            text = ref["response"]
            locks = [text[a:b] for a, b, k in ref["spans"] if k == "lock"]
            forks = [text[a:b] for a, b, k in ref["spans"] if k == "fork"]
            for number in re.findall(r"(?:by|than|is|add|subtract) (\d+)", q):  # every constant of the statement
                assert number in locks
            assert ref["var"] in forks and any(f.strip() for f in forks)
            spans = sorted((a, b) for a, b, _ in ref["spans"])
            assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:])), "spans overlap"


def test_splits_are_disjoint_seeded_and_hold_unseen_pairs():
    a = split_records(3, {"test": 60, "dev": 30, "ssd": 60, "pretrain": 400})
    b = split_records(3, {"test": 60, "dev": 30, "ssd": 60, "pretrain": 10})
    assert a["test"] == b["test"] and a["dev"] == b["dev"] and a["ssd"] == b["ssd"]  # pretrain size changes nothing else
    keys = {name: {r["testbed"]["key"] for r in recs} for name, recs in a.items()}
    names = list(keys)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            assert not keys[x] & keys[y], (x, y)
    assert not any(r["testbed"]["unseen_pair"] for r in a["pretrain"])
    assert sum(r["testbed"]["unseen_pair"] for r in a["test"]) >= 10
    assert {r["difficulty"] for r in a["test"]} == {"easy", "medium", "hard"}
    assert {json.loads(r["metadata"]).get("func_name") is None for r in a["test"]} == {True, False}  # both kinds


def test_failure_kinds(sample_problems):
    rec = next(r for r in sample_problems if r["testbed"]["kind"] == "function" and r["testbed"]["rules"] >= 3)
    ref = rec["testbed"]["references"][0]["response"]
    lines = ref.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("# rule")]  # comment, branch, body
    block = lines[starts[1]:starts[1] + 3]
    looped = "\n".join(lines[:starts[2]] + block + lines[starts[2]:])  # rule 2 written twice
    skipped = "\n".join(lines[:starts[1]] + lines[starts[1] + 3:])  # rule 2 left out
    assert tasks.failure_kind(rec, ref, "stop", "passed") == "passed"
    assert tasks.failure_kind(rec, looped, "stop", "wrong_answer") == "loop"
    assert tasks.failure_kind(rec, skipped, "stop", "wrong_answer") == "skip"
    assert tasks.failure_kind(rec, ref, "stop", "wrong_answer") == "wrong_detail"
    assert tasks.failure_kind(rec, ref[:40], "length", "no_code") == "truncated"
    assert tasks.failure_kind(rec, "I cannot", "stop", "no_code") == "no_code"


# ---------------------------------------------------------------------------------------------------------
# The shipped base


def test_shipped_base_matches_its_manifest_and_is_vllm_shaped():
    base = shipped_base()
    manifest = verify_base(base)
    cfg = json.loads((base / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["head_dim"] == 64
    assert cfg["torch_dtype" if "torch_dtype" in cfg else "dtype"] == "float16"
    assert 1_000_000 < manifest["parameters"] < 10_000_000
    assert sum((base / f).stat().st_size for f in manifest["model_files"]) < 12 << 20
    assert manifest["dev_greedy_pass@1"] > 0.05  # it codes: a real share of dev problems fully right
    for key in ("build_config", "seed", "split_hashes", "pretrain", "timings_s", "environment"):
        assert key in manifest


def test_shipped_bases_are_checkpoints_of_one_build_and_say_why_they_were_chosen():
    """`ssd demo --base NAME`: every base in bases.yaml verifies against its own build manifest, comes from the same
    build as the default one (same config, splits, tokenizer), and carries the dev numbers it was chosen by, weakest
    first."""
    from simplesd.io import InputError
    from simplesd.testbed.artefacts import resolve_base, shipped_bases

    default, bases = shipped_bases()
    assert default in bases and len(bases) >= 3
    final = verify_base(bases[default]["dir"])
    dev = []
    for name, b in bases.items():
        assert resolve_base(name) == (name, b["dir"], b["why"]) and "dev" in b["why"]
        m = verify_base(b["dir"])  # every file's checksum
        assert m["build_config"] == final["build_config"] and m["split_hashes"] == final["split_hashes"]
        assert (b["dir"] / "tokenizer.json").read_bytes() == (bases[default]["dir"] / "tokenizer.json").read_bytes()
        assert sum(m["dev_greedy_outcomes"].values()) == final["split_sizes"]["dev"]
        if name != default:
            assert m["snapshot_of"]["build_final_model_files"] == final["model_files"]
            assert m["pretrain"]["optimizer_steps"] < final["pretrain"]["optimizer_steps"]
            assert [m["snapshot_of"]["round"], m["snapshot_of"]["step"]] in final["build_config"]["snapshots"]
        dev.append(m["dev_greedy_pass@1"])
    assert dev == sorted(dev) and dev[0] < dev[-1] - 0.2  # weakest first, and of clearly different strengths
    assert resolve_base(None)[0] == default
    with pytest.raises(InputError, match="neither a shipped base"):
        resolve_base("strongest")


def test_shipped_tokenizer_keeps_the_prompt_a_token_prefix(sample_problems):
    """Sampling feeds the generation prompt's tokens; training the prompt + response's. They must agree."""
    from transformers import AutoTokenizer

    from simplesd.prompts import problem_from_record, user_prompt

    tok = AutoTokenizer.from_pretrained(shipped_base())
    for r in sample_problems:
        user = {"role": "user", "content": user_prompt(problem_from_record(r, "livecodebench", r["question_id"], 0))}
        for ref in r["testbed"]["references"]:
            prompt = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template([user, {"role": "assistant", "content": ref["response"]}], tokenize=False)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            f_ids = tok(full, add_special_tokens=False)["input_ids"]
            assert f_ids[:len(p_ids)] == p_ids
            assert tok.decode(f_ids[len(p_ids):], skip_special_tokens=True).strip() == ref["response"]


def test_damaged_base_is_refused(tmp_path):
    import shutil

    copy = tmp_path / "base"
    shutil.copytree(shipped_base(), copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    r = ssd("demo", "--quick", "--base", copy, "--out", tmp_path / "d", "--no-progress")
    assert r.returncode == 2 and "model.safetensors: checksum differs" in r.stderr


def test_reduced_rebuild_is_the_same_pipeline_and_deterministic(tmp_path):
    """`ssd testbed build --reduced`: the shipped base's pipeline at toy size. Two builds give identical files."""
    for name in ("a", "b"):
        ssd("testbed", "build", "--reduced", "--out", tmp_path / name, "--no-progress", check=True, timeout=900)
    a, b = (read_build_manifest(tmp_path / n / "model") for n in "ab")
    assert a["model_files"] == b["model_files"] and a["split_hashes"] == b["split_hashes"]
    shipped = read_build_manifest(shipped_base())
    assert set(a) == set(shipped) and set(a["build_config"]) == set(shipped["build_config"])
    assert a["build_config"] == vars(load_build_config(REDUCED_YAML))
    assert shipped["build_config"] == vars(load_build_config())  # build.yaml is what the shipped base was built with
    reduced = read_yaml(REDUCED_YAML)
    assert {k: v for k, v in a["build_config"].items() if k not in reduced} == \
        {k: v for k, v in shipped["build_config"].items() if k not in reduced}
    for stage in ("pretrain", "pretrain_2"):  # two rounds, each simplesd's own train stage
        assert json.loads((tmp_path / "a" / stage / "manifest.json").read_text())["stage"] == "train"
    assert len(a["pretrain"]["rounds"]) == 2 and a["pretrain"]["final_loss"] < a["pretrain"]["rounds"][0]["first_loss"]
    shipped_tok = json.loads((shipped_base() / "tokenizer_config.json").read_text())
    built_tok = json.loads((tmp_path / "a" / "model" / "tokenizer_config.json").read_text())
    assert built_tok.get("chat_template") == shipped_tok.get("chat_template")
    assert (tmp_path / "a" / "model" / "chat_template.jinja").read_text() == (shipped_base() / "chat_template.jinja").read_text()


# ---------------------------------------------------------------------------------------------------------
# ssd demo


def _check_results(out, r):
    res = json.loads((out / "results.json").read_text())
    base_T0 = read_jsonl(out / "eval" / "base" / "T0" / "verdicts.jsonl")
    assert res["base"]["by_temperature"]["0"]["pass@1"]["value"] == pytest.approx(
        sum(v["verdict"] == "passed" for v in base_T0) / len(base_T0))
    assert sum(res["greedy_failure_kinds"]["base"].values()) == len(base_T0)
    assert res["greedy_failure_kinds"]["base"].get("passed", 0) == sum(v["verdict"] == "passed" for v in base_T0)
    assert res["prior_only_pass@1"] == {"identity": 0.0, "constant": 0.0}
    ss = res["self_samples"]
    assert 0 < ss["samples"] and 0 <= ss["correct"] <= ss["samples"] and ss["kept"] <= ss["samples"]
    d = res["best_vs_best"]["pass@1"]
    assert d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    assert set(res["stage_seconds"]) >= {"sample", "filter", "train", "evaluate_base", "evaluate_control", "evaluate_tuned"}
    assert "best-vs-best pass@1" in r.stdout and "self-samples correct" in r.stdout
    # the third arm: the base under the no-training control; its greedy point is the base's (copied, same verdicts)
    assert res["control"]["decoding"] == "ssd_equivalent (support of T 1.5, top-k 20, top-p 0.8)"
    assert read_jsonl(out / "eval" / "control" / "T0" / "verdicts.jsonl") == base_T0
    for key, (a, b) in {"ssd_vs_control": ("control", "ssd"), "control_vs_base": ("base", "control")}.items():
        d = res[key]["pass@1"]
        assert d["ci95"][0] <= d["difference"] <= d["ci95"][1] and d["problems"] == res["test_problems"]
        per_problem = {}
        for arm in (a, b):  # the difference recomputed from the two arms' verdicts at their best T_eval
            t = res[arm]["best_temperature"]
            rows = read_jsonl(out / "eval" / {"ssd": "tuned"}.get(arm, arm) / f"T{t}" / "verdicts.jsonl")
            per_problem[arm] = sum(v["verdict"] == "passed" for v in rows) / len(rows)
        assert d["difference"] == pytest.approx(per_problem[b] - per_problem[a])
    assert "SSD - control" in (out / "report.md").read_text() and "best-vs-best pass@1: control" in r.stdout
    # the analyses: held-out self-samples, and the references whose ground-truth spans score the lock/fork rule
    held = json.loads((out / "filter" / "stats.json").read_text())["held_out"]
    assert json.loads((out / "analysis" / "summary.json").read_text())["texts"] == held > 0
    refs = json.loads((out / "analysis-references" / "summary.json").read_text())
    assert refs["texts"] == 64 and res["rule_vs_ground_truth"] == refs["agreement"]
    assert refs["agreement"]["by_rule"][3]["rule"] == "top1 < 0.8" and refs["agreement"]["by_rule"][3]["cohen_kappa"] > 0.6
    assert set(res["analysis"]) == {"analysis", "analysis-references"} and "lock tail mass" in r.stdout
    page = (out / "report.html").read_text()
    for section in ("Evaluation", "Testbed diagnostics", "Lock and fork positions", "Samples and filter", "Training"):
        assert f">{section}</h2>" in page
    # self-contained: 4 run plots + 3 per analysis, every source inlined, no script or stylesheet to fetch
    assert re.findall(r"<img src='(.{11})", page) == ["data:image/"] * 10
    assert "<script" not in page and "<link" not in page
    return res


# `ssd demo --quick`'s published numbers (seeded; measured on a 2-core x86 CPU with torch 2.13): pass@1 per T_eval
# over 40 problems (within one problem, 0.025, for another CPU's float rounding), the self-samples graded, and the
# training loss at its two logged steps
QUICK_DEMO = {"base": {"0": 0.7, "0.9": 0.625}, "control": {"0": 0.7, "0.9": 0.575},
              "ssd": {"0": 0.725, "0.9": 0.6375}, "self_samples_correct": 55,
              "kept": 82, "losses": [0.1033, 0.1002]}


def test_ssd_demo_quick(quick_demo):
    out, r = quick_demo
    res = _check_results(out, r)
    for model in ("base", "control", "ssd"):
        got = {t: v["pass@1"]["value"] for t, v in res[model]["by_temperature"].items()}
        assert got == pytest.approx(QUICK_DEMO[model], abs=0.026), model
    assert abs(res["self_samples"]["correct"] - QUICK_DEMO["self_samples_correct"]) <= 3
    assert res["self_samples"]["kept"] == QUICK_DEMO["kept"]
    losses = [h["loss"] for h in json.loads((out / "train" / "log_history.json").read_text()) if "loss" in h]
    assert losses == pytest.approx(QUICK_DEMO["losses"], rel=0.02)
    from simplesd.testbed.demo import render

    assert all(line in r.stdout for line in render(res))  # what it printed is what results.json holds
    assert res["quick"] and res["test_problems"] == 40 and res["self_samples"]["samples"] == 96
    assert len(read_jsonl(out / "eval" / "tuned" / "T0" / "verdicts.jsonl")) == 40  # greedy: one sample per problem
    assert len(read_jsonl(out / "eval" / "tuned" / "T0.9" / "verdicts.jsonl")) == 80
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["sample"]["temperature"] == 1.5 and run["config"]["sample"]["top_p"] == 0.8
    fc = run["stages"]["filter"]["counts"]
    alive = 96 - fc.get("dropped_empty", 0)
    assert fc["kept"] == alive - alive // 10
    # trained on exactly what was sampled, and the report says so
    tc = json.loads((out / "train" / "manifest.json").read_text())["counts"]
    assert tc["token_exact_rows"] == tc["examples"] == fc["train_rows"] and tc["rows_rendered_differently"] == 0
    assert f"Token-exact: {tc['examples']} of {tc['examples']} rows" in (out / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.alone
def test_ssd_demo_full_and_its_readme_command(tmp_path):
    out = tmp_path / "demo"
    r = ssd("demo", "--out", out, "--no-progress", check=True, timeout=1800)
    res = _check_results(out, r)
    assert res["test_problems"] == 200 and set(res["base"]["by_temperature"]) == {"0", "0.3", "0.6", "0.9", "1.2"}
    assert "pass@5" in res["best_vs_best"]


@pytest.mark.slow
def test_ssd_demo_map_quick(tmp_path):
    """`ssd demo --map --quick`: the quick demo on every shipped base, one row per base (weakest first) whose numbers
    are the base's own demo results, and the table and plot people compare."""
    from simplesd.testbed.artefacts import shipped_bases

    out = tmp_path / "map"
    r = ssd("demo", "--map", "--quick", "--out", out, "--no-progress", check=True, timeout=2400)
    res = json.loads((out / "results.json").read_text())
    _, bases = shipped_bases()
    assert [row["base"] for row in res["bases"]] == list(bases) and res["quick"]
    for row in res["bases"]:
        one = json.loads((out / row["base"] / "results.json").read_text())
        assert one["base_name"] == row["base"] and one["base_why"] == bases[row["base"]]["why"]
        assert row["test_greedy_pass@1"] == one["base"]["by_temperature"]["0"]["pass@1"]["value"]
        assert row["ssd_minus_control"]["pass@1"]["difference"] == one["ssd_vs_control"]["pass@1"]["difference"]
        assert row["self_samples_correct"] == one["self_samples"]["share_correct"]
        kinds = one["greedy_failure_kinds"]["base"]
        assert row["test_greedy_loop_rate"] == kinds.get("loop", 0) / sum(kinds.values())
    table = (out / "map.md").read_text()
    assert all(f"| {name} |" in table for name in bases) and "SSD - control pass@1" in table
    assert (out / "map.png").stat().st_size > 1000 and "map:" in r.stdout
