import json

import pytest
from conftest import read_jsonl, ssd


def _run_args(tiny_model, problems_file, out):
    return ["run", "--model", tiny_model, "--prompts", problems_file, "--out", out, "--no-progress",
            "sample.max_new_tokens=24", "sample.n=2", "sample.shard_size=5", "train.learning_rate=1e-3",
            "train.effective_batch_size=4", "train.max_seq_length=256"]


def test_ssd_run_end_to_end_then_rerun_skips_every_stage(tmp_path, tiny_model, problems_file):
    out = tmp_path / "run"
    r = ssd(*_run_args(tiny_model, problems_file, out), check=True)
    assert "no benchmark configured" in r.stdout  # a clear stop after train when there is nothing to grade on
    run = json.loads((out / "run.json").read_text())
    assert run["evaluated"] is False and run["tuned_model"] == str(out / "train" / "model")
    manifests = {s: json.loads((out / s / "manifest.json").read_text()) for s in ("sample", "filter", "train")}
    for stage, m in manifests.items():
        assert m["complete"] and m["stage"] == stage
        assert m["environment"]["packages"]["torch"] and "git_commit" in m["environment"]
        assert m["inputs"] and m["counts"] and set(m["timings_s"]) >= {"total"}
    assert manifests["sample"]["counts"]["samples"] == 24
    assert manifests["filter"]["counts"]["total"] == 24
    kept = manifests["filter"]["counts"]["kept"]
    assert kept == 24 - manifests["filter"]["counts"]["dropped_empty"] - manifests["filter"]["counts"]["dropped_shortest"]
    held = manifests["filter"]["counts"]["held_out"]
    assert held == 2  # ceil(0.02 x 12 prompts) = 1 prompt, its n = 2 samples: untrained, for `ssd analyze`
    assert manifests["train"]["counts"]["examples"] == kept - held
    assert manifests["train"]["counts"]["optimizer_steps"] == -(-(kept - held) // 4)
    # the filter stage's input is the sample stage's output, the train stage's input is the filter's output
    assert (out / "config.yaml").read_text().startswith("model:")

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "train" / "model")

    # rerun: every stage is complete for the same config and inputs, so nothing runs again
    # the held-out sample was analysed and the run has its report (sections for what this run has)
    an = json.loads((out / "analysis" / "summary.json").read_text())
    assert an["texts"] == len(read_jsonl(out / "filter" / "heldout.jsonl")) == 2 and an["tokens"] > 0
    page = (out / "report.html").read_text()
    for section in ("Samples and filter", "Training", "Lock and fork positions", "Not evaluated"):
        assert section in page
    assert "<h2 id='evaluation'>" not in page and (out / "report.md").read_text().startswith("# SSD run report")
    # `ssd analyze --run` resolves to the very same models, texts and settings: the finished analysis is reused
    r = ssd("analyze", "--run", out, "--no-progress", check=True)
    assert "skipping" in r.stderr and f"analyze: {an['tokens']} tokens of 2 texts" in r.stdout

    r = ssd(*_run_args(tiny_model, problems_file, out), check=True)
    assert r.stderr.count("skipping") == 4  # sample, filter, train, analyze
    for stage, m in manifests.items():
        assert json.loads((out / stage / "manifest.json").read_text())["finished_at"] == m["finished_at"]
    # the same run with train.push_to_hub: nothing is redone (the Hub keys are not part of what is trained), and the
    # model and the dataset go up once the run is through (a Hub on localhost: tests/fake_hub.py)
    from fake_hub import FakeHub

    with FakeHub() as hub:
        r = ssd(*_run_args(tiny_model, problems_file, out), "train.push_to_hub=true", "train.hub_model_id=alice/tiny",
                env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake"})
    assert r.returncode == 0 and r.stderr.count("skipping") == 4, r.stderr
    assert [(c["kind"], c["repo"]) for c in hub.commits] == [("models", "alice/tiny"), ("datasets", "alice/tiny-samples")]
    assert "push: dataset " + hub.url in r.stdout and (out / "hub" / "export.json").is_file()

    # a changed filter setting is refused, naming the key, with nothing deleted or rewritten (config.yaml included)
    config_before = (out / "config.yaml").read_text()
    r = ssd(*_run_args(tiny_model, problems_file, out), "filter.drop_shortest_fraction=0.5")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == (
        f"ssd: error: {out / 'filter'}: holds filter output of another config or other inputs (filter.drop_shortest_fraction: "
        "0.1 -> 0.5); rerun with --overwrite to delete it and start over, or choose another output directory")
    assert (out / "config.yaml").read_text() == config_before
    for stage, m in manifests.items():
        assert json.loads((out / stage / "manifest.json").read_text())["finished_at"] == m["finished_at"]
    # --overwrite reruns filter and what depends on it (train, analyze), and still reuses sample
    r = ssd(*_run_args(tiny_model, problems_file, out), "filter.drop_shortest_fraction=0.5", "--overwrite", check=True)
    assert "sample: " in r.stderr and r.stderr.count("skipping") == 1 and "--overwrite: deleting" in r.stderr
    assert json.loads((out / "filter" / "manifest.json").read_text())["counts"]["dropped_shortest"] >= 10
    assert "drop_shortest_fraction: 0.5" in (out / "config.yaml").read_text()


def test_ssd_run_evaluates_base_and_tuned(tmp_path, tiny_model, problems_file):
    """With eval.benchmark set, `ssd run` samples the benchmark at every T_eval for both models, grades in the
    sandbox and reports the best-vs-best pass@1 difference with its CI (a random model scores 0: the numbers
    are checked for shape and consistency, not for SSD's effect)."""
    import gzip

    from conftest import HUMANEVAL

    subset = tmp_path / "he.jsonl"
    with gzip.open(HUMANEVAL, "rt") as f:
        subset.write_text("".join(line for _, line in zip(range(4), f)))
    out = tmp_path / "run"
    r = ssd(*_run_args(tiny_model, problems_file, out), "eval.benchmark=humaneval", f"eval.problems={subset}",
            "eval.n=2", "eval.temperatures=0.6,1.0", "eval.max_new_tokens=16", check=True)
    assert "[5/6] evaluate control (the base, ssd_equivalent (support of T 1.5, top-k 20, top-p 0.8))" in r.stdout
    assert "[6/6] evaluate SSD" in r.stdout and "SSD - base:" in r.stdout and "SSD - control:" in r.stdout
    comp = json.loads((out / "eval" / "comparison.json").read_text())
    assert set(comp["base"]["by_temperature"]) == {"0.6", "1"}
    d = comp["best_vs_best_pass@1"]
    best = {}
    for model in ("base", "control", "tuned"):  # each arm's best pass@1, recomputed from its verdict files
        per_t = {}
        for t in ("0.6", "1"):
            rows = read_jsonl(out / "eval" / model / f"T{t}" / "verdicts.jsonl")
            assert len(rows) == 8 and len({r["task_id"] for r in rows}) == 4
            per_t[t] = sum(r["verdict"] == "passed" for r in rows) / len(rows)
            assert comp[model]["by_temperature"][t]["pass@1"] == pytest.approx(per_t[t])
        best[model] = max(per_t.values())
    assert d["problems"] == 4 and d["difference"] == pytest.approx(best["tuned"] - best["base"])
    c = comp["ssd_vs_control_pass@1"]
    assert c["problems"] == 4 and c["difference"] == pytest.approx(best["tuned"] - best["control"])
    for model in ("base", "control", "tuned"):
        summary = json.loads((out / "eval" / model / "T0.6" / "summary.json").read_text())
        dec = summary["decoding"]
        assert {k: dec[k] for k in ("temperature", "top_k", "top_p", "min_p", "n", "max_new_tokens", "seed")} == {
            "temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0, "n": 2, "max_new_tokens": 16, "seed": 1234}
        # the control mirrors the run's T_train sampling (sample.*); the other arms decode plainly
        assert (dec["decoding"], dec["control_temperature"], dec["control_top_k"], dec["control_top_p"]) == (
            ("ssd_equivalent", 1.5, 20, 0.8) if model == "control" else ("plain", None, None, None))
        assert dec["backend"] == "transformers" and summary["benchmark"] == "humaneval"
        assert summary["selection"]["problems"] == 4 and summary["grader"]["timeout_s"] == 3.0
        assert summary["versions"]["transformers"] and summary["versions"]["python"]
        assert sum(summary["verdicts"].values()) == 8 and summary["grader"]["sandbox"]["probe"]["passed"]
    # the training prompts were checked against the 4 problems evaluated on: none overlaps
    prompts = json.loads((out / "sample" / "prompts.json").read_text())
    assert prompts["decontamination"]["settings"]["benchmarks"][0]["problems"] == 4
    assert prompts["decontamination"]["flagged"] == [] and prompts["counts"]["contaminated"] == 0
    assert "Decontamination against humaneval (4 problems)" in (out / "report.md").read_text()
    assert json.loads((out / "run.json").read_text())["evaluated"] is True
    # the results went into the training's TensorBoard run (train.report_to's default), at its last step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert "trackers: results logged to tensorboard" in r.stdout
    events = EventAccumulator(str(out / "train" / "tensorboard")).Reload()
    steps = json.loads((out / "train" / "manifest.json").read_text())["counts"]["optimizer_steps"]
    scalars = {tag: events.Scalars(tag)[-1] for tag in events.Tags()["scalars"]}
    assert "train/loss" in scalars and scalars["eval/ssd/best_pass@1"].step == steps
    assert scalars["eval/ssd/best_pass@1"].value == pytest.approx(comp["tuned"]["best_pass@1"]["value"])
    assert scalars["eval/ssd_minus_control/pass@1"].value == pytest.approx(c["difference"])
    assert scalars["eval/control/pass@1/T0.6"].value == pytest.approx(comp["control"]["by_temperature"]["0.6"]["pass@1"])


def test_ssd_evaluate_cli_sweep_and_resume(tmp_path, tiny_model):
    """`ssd evaluate --sweep` on a LiveCodeBench-format file: the date window selects, each T_eval gets its own
    samples, verdicts and summary, and a rerun reuses them."""
    import lcb_fixtures

    rows, _ = lcb_fixtures.build(n_problems=8, tests_per_problem=2)  # contest months 2025-01 .. 2025-06
    problems = tmp_path / "lcb.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--model", tiny_model, "--benchmark", "livecodebench", "--problems", problems,
            "--n", "2", "--sweep", "0.5,1.0", "--top-p", "0.9", "--out", tmp_path / "ev", "--no-progress",
            "eval.max_new_tokens=8", "eval.timeout=1"]
    r = ssd(*args, check=True)
    assert "best T_eval" in r.stdout
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(res["by_temperature"]) == {"0.5", "1"}
    s = json.loads((tmp_path / "ev" / "T0.5" / "summary.json").read_text())
    in_window = [r for r in rows if "2025-02" <= r["contest_date"][:7] <= "2025-05"]
    assert s["selection"]["problems"] == len(in_window) == 5  # three of the eight are in 2025-01 or 2025-06
    assert s["decoding"]["top_p"] == 0.9 and s["decoding"]["n"] == 2
    assert s["selection"]["start_month"] == "2025-02" and s["selection"]["end_month"] == "2025-05"
    assert sum(s["selection"]["by_month"].values()) == 5 and set(s["selection"]["by_month"]) <= {
        "2025-02", "2025-03", "2025-04", "2025-05"}
    assert sum(s["selection"]["by_difficulty"].values()) == 5 and s["selection"]["problems_in_file"] == 8
    assert s["grader"]["timeout_s"] == 1 and s["grader"]["timeout_applies_to"] == "each test" and "warning" not in s["selection"]
    assert sum(s["verdicts"].values()) == 2 * len(in_window)
    assert len(read_jsonl(tmp_path / "ev" / "T1" / "verdicts.jsonl")) == 2 * len(in_window)
    again = ssd(*args, check=True)
    assert again.stderr.count("skipping") == 2  # both temperatures' samples reused
    # a window that selects nothing is an error naming the keys and the file's months
    r = ssd(*args, "eval.start_month=2023-01", "eval.end_month=2023-12", "--out", tmp_path / "none")
    assert r.returncode == 2 and "no problem in the window 2023-01..2023-12" in r.stderr
    assert "2025-01..2025-06" in r.stderr and not (tmp_path / "none" / "results.json").exists()
    # a window that selects the whole file is a warning, kept in the summary
    r = ssd(*args, "eval.start_month=2024-01", "eval.end_month=2026-12", "--out", tmp_path / "wide", check=True)
    assert "selects all 8 problems" in r.stderr
    assert "every problem" in json.loads((tmp_path / "wide" / "T0.5" / "summary.json").read_text())["selection"]["warning"]
    bad = ssd(*args[:-2], "eval.start_month=2030-01", "eval.end_month=2030-12")
    assert bad.returncode == 2 and "no problem in the window 2030-01..2030-12" in bad.stderr
