"""Iterative SSD (`ssd run --rounds N`) and decoding sweeps (`ssd sweep`) on the tiny random model: the
mechanics (which model samples and trains, what is reused, when it stops, what is written). The testbed runs
of both, with numbers, are the slow tests at the end."""

import gzip
import json

import pytest
from conftest import HUMANEVAL, read_jsonl, ssd


@pytest.fixture()
def humaneval4(tmp_path):
    subset = tmp_path / "he.jsonl"
    with gzip.open(HUMANEVAL, "rt") as f:
        subset.write_text("".join(line for _, line in zip(range(4), f)))
    return subset


def _args(tiny_model, problems_file, humaneval4):
    return ["--model", tiny_model, "--prompts", problems_file, "--no-progress", "sample.max_new_tokens=16",
            "sample.shard_size=4", "train.learning_rate=1e-3", "train.effective_batch_size=4",
            "train.max_seq_length=256", "eval.benchmark=humaneval", f"eval.problems={humaneval4}", "eval.n=2",
            "eval.temperatures=0.6", "eval.max_new_tokens=16", "filter.holdout_fraction=0"]


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_rounds_sample_from_the_last_model_on_fresh_prompts_and_stop_without_gain(tmp_path, tiny_model,
                                                                                  problems_file, humaneval4):
    out = tmp_path / "rounds"
    args = ["run", *_args(tiny_model, problems_file, humaneval4), "--out", out, "prompts.max_prompts=4",
            "pipeline.round_prompts=fresh", "pipeline.round_init=base"]
    r = ssd(*args, "--rounds", "2", check=True)
    assert "== round 2/2" in r.stdout
    info = json.loads((out / "rounds.json").read_text())
    assert info["rounds_run"] == 2 and info["stopped_early"] is None
    assert info["final_model"] == str(out / "round-2" / "train" / "model")
    r1, r2 = info["rounds"]
    # round 2 samples from round 1's model, on the next 4 prompts, and (round_init=base) fine-tunes the base
    assert r2["sampled_from"] == str(out / "round-1" / "train" / "model") and r2["trained_from"] == str(tiny_model)
    assert (r1["prompts_offset"], r2["prompts_offset"]) == (0, 4)
    def ids(r):
        return {rec["prompt_id"] for s in (out / f"round-{r}" / "sample").glob("shard-*.jsonl") for rec in read_jsonl(s)}

    from simplesd.prompts import shuffle_key

    order = sorted((f"q{i}" for i in range(12)), key=lambda q: shuffle_key(0, q))  # prompts.seed 0's order
    assert ids(1) == set(order[:4]) and ids(2) == set(order[4:8])
    s2, t2, t1 = _manifest(out / "round-2" / "sample"), _manifest(out / "round-2" / "train"), _manifest(out / "round-1" / "train")
    assert s2["inputs"]["model"] != t2["inputs"]["model"] == t1["inputs"]["model"]  # sampled from r1, trained from base
    # the model round 2 samples from was graded as round 1's result: reused, not graded again
    m1 = _manifest(out / "round-1" / "eval" / "tuned" / "T0.6")
    m2 = _manifest(out / "round-2" / "eval" / "base" / "T0.6")
    assert m1["finished_at"] == m2["finished_at"] and m1["fingerprint"] == m2["fingerprint"]
    assert r2["base"]["best_pass@1"] == r1["tuned"]["best_pass@1"]
    assert set(r2["gain"]) >= {"difference", "ci95", "problems"}
    page = (out / "report.html").read_text()
    assert "Rounds" in page and "round-2/report.html" in page and (out / "report_files" / "rounds.png").stat().st_size > 1000
    assert (out / "round-1" / "report.html").is_file() and (out / "round-2" / "report.html").is_file()
    # exported: the last round's model and samples, the card with the rounds' table
    ssd("export", out, "--out", tmp_path / "hub", "--repo-id", "alice/rounds", check=True)
    card = (tmp_path / "hub" / "model" / "README.md").read_text()
    assert "This is round 2 of iterative SSD" in card and "## Rounds" in card and "gain over the model sampled from" in card
    assert ((tmp_path / "hub" / "model" / "model.safetensors").read_bytes()
            == (out / "round-2" / "train" / "model" / "model.safetensors").read_bytes())
    record = json.loads((tmp_path / "hub" / "export.json").read_text())
    assert record["round"] == "round-2"
    assert record["dataset_rows"]["train"] == len(read_jsonl(out / "round-2" / "filter" / "train.jsonl"))

    # a third round is only worth it with a gain of at least 0.01: round 1's was 0 (a random model), so the
    # rerun stops after round 1, whose stages are all done already (nothing is sampled or trained again)
    r = ssd(*args, "--rounds", "3", "pipeline.min_gain=0.01", check=True)
    info = json.loads((out / "rounds.json").read_text())
    assert info["rounds_run"] == 1 and info["rounds_planned"] == 3
    assert "below pipeline.min_gain +0.0100: stopped after 1 of 3 rounds" in info["stopped_early"]
    assert _manifest(out / "round-1" / "train")["finished_at"] == t1["finished_at"]


def test_rounds_config_errors_name_the_key(tmp_path, tiny_model, problems_file, humaneval4):
    r = ssd("run", *_args(tiny_model, problems_file, humaneval4), "--out", tmp_path / "x", "--rounds", "2",
            "pipeline.round_prompts=fresh")
    assert r.returncode == 2 and "pipeline.round_prompts" in r.stderr and "prompts.max_prompts" in r.stderr
    r = ssd("run", *_args(tiny_model, problems_file, humaneval4), "--out", tmp_path / "x", "pipeline.round_init=last")
    assert r.returncode == 2 and r.stderr.strip().endswith("must be previous or base, got 'last'")


def test_sweep_runs_each_point_once_reuses_the_base_and_tabulates(tmp_path, tiny_model, problems_file, humaneval4):
    out = tmp_path / "sweep"
    args = ["sweep", *_args(tiny_model, problems_file, humaneval4), "--out", out, "prompts.max_prompts=4",
            "--grid", "sample.temperature=1.0,1.5", "--grid", "sample.top_p=0.8", "--eval-temperatures", "0.6,1.0"]
    r = ssd(*args, check=True)
    assert "best point" in r.stdout
    res = json.loads((out / "sweep.json").read_text())
    names = [p["point"] for p in res["points"]]
    assert names == ["temperature=1.0_top_p=0.8", "temperature=1.5_top_p=0.8"]
    for p in res["points"]:
        assert p["best_T_eval"] in (0.6, 1.0) and 0 <= p["pass@1"] <= 1 and p["truncation"] == "top-k 20, top-p 0.8"
        cfg = json.loads((out / "points" / p["point"] / "run.json").read_text())["config"]
        assert cfg["sample"]["temperature"] == p["T_train"] and cfg["eval"]["temperatures"] == [0.6, 1.0]
        # every point's base evaluation is the one evaluation in base-eval/, reused
        for t in ("T0.6", "T1"):
            assert (_manifest(out / "points" / p["point"] / "eval" / "base" / t)["finished_at"]
                    == _manifest(out / "base-eval" / t)["finished_at"])
        # each point's control mirrors that point's T_train, and the table has SSD - control beside SSD - base
        dec = json.loads((out / "points" / p["point"] / "eval" / "control" / "T0.6" / "summary.json").read_text())["decoding"]
        assert dec["control_temperature"] == p["T_train"] and "vs_control" in p
    assert len((out / "sweep.csv").read_text().splitlines()) == 3
    assert "| temperature=1.5_top_p=0.8 |" in (out / "sweep.md").read_text()
    assert "vs control" in (out / "sweep.md").read_text()
    assert (out / "sweep.png").stat().st_size > 1000
    first = _manifest(out / "points" / names[0] / "train")["finished_at"]

    r = ssd(*args, check=True)  # rerun: every point is done
    assert r.stdout.count("done, skipped") == 2
    assert _manifest(out / "points" / names[0] / "train")["finished_at"] == first

    r = ssd("export", out, "--out", tmp_path / "hub")  # which point is the user's choice
    assert r.returncode == 2 and "a sweep's directory; export one of its runs" in r.stderr
    r = ssd(*args, "--point", "2")
    assert r.returncode == 2 and "the grid has points 0..1" in r.stderr
    r = ssd(*args[:-4], "--grid", "eval.temperature=0.2,0.4")
    assert r.returncode == 2 and "--eval-temperatures" in r.stderr
    r = ssd(*args[:-6], "--grid", "sample.top_p=0.5,1.5")
    assert r.returncode == 2 and "grid point top_p=1.5: config key 'sample.top_p'" in r.stderr


def test_sweep_of_the_controls_settings_evaluates_only_the_control(tmp_path, tiny_model, problems_file, humaneval4):
    """A grid of eval.control_* alone: each point is the base under the decoding rule with those settings (nothing
    sampled for training, nothing trained), tabulated against the base evaluated once."""
    out = tmp_path / "sweep"
    args = ["sweep", *_args(tiny_model, problems_file, humaneval4), "--out", out, "--grid",
            "eval.control_temperature=1.0,2.0", "--grid", "eval.control_top_p=0.8", "--eval-temperatures", "0,0.6"]
    ssd(*args, check=True)
    res = json.loads((out / "sweep.json").read_text())
    assert res["arm"] == "control" and [p["point"] for p in res["points"]] == [
        "control_temperature=1.0_control_top_p=0.8", "control_temperature=2.0_control_top_p=0.8"]
    for p, t in zip(res["points"], (1.0, 2.0)):
        pdir = out / "points" / p["point"]
        assert not (pdir / "train").exists() and not (pdir / "sample").exists()
        dec = json.loads((pdir / "eval" / "control" / "T0.6" / "summary.json").read_text())["decoding"]
        assert (dec["decoding"], dec["control_temperature"], dec["control_top_k"], dec["control_top_p"]) == (
            "ssd_equivalent", t, 20, 0.8)
        assert p["T_train"] == t and p["truncation"] == "top-k 20, top-p 0.8"
        # greedy under the control is plain greedy: the base's greedy point, copied, not sampled again
        assert (_manifest(pdir / "eval" / "control" / "T0" / "samples")["finished_at"]
                == _manifest(out / "base-eval" / "T0" / "samples")["finished_at"])
    assert "The control (the base under eval.decoding=ssd_equivalent" in (out / "sweep.md").read_text()
    r = ssd(*args[:-4], "--grid", "eval.decoding=plain,ssd_equivalent")
    assert r.returncode == 2 and "the control's settings (eval.control_temperature" in r.stderr


@pytest.mark.slow
def test_testbed_three_rounds_and_a_sweep(tmp_path):
    """On the testbed (the demo's --quick sizes, evaluated on dev): `ssd run --rounds 3` and a 2-point sweep
    complete, every round and point has its numbers, and the tables say what was measured."""
    tb = tmp_path / "tb"
    ssd("testbed", "config", "--out", tb, "--quick", "--split", "dev", check=True)
    cfg = tb / "testbed.yaml"
    ssd("run", "--config", cfg, "--out", tmp_path / "rounds", "--rounds", "3", "pipeline.min_gain=-1",
        "--no-progress", check=True, timeout=1500)
    info = json.loads((tmp_path / "rounds" / "rounds.json").read_text())
    assert info["rounds_run"] == 3  # min_gain -1: no early stop, so all three rounds are measured
    print("\nround  sampled-from  pass@1 base -> tuned (best T_eval)  gain [95% CI]")
    for row in info["rounds"]:
        g = row["gain"]
        print(f"{row['round']}  {row['base']['best_pass@1']['value']:.3f} -> {row['tuned']['best_pass@1']['value']:.3f} "
              f"(T {row['tuned']['best_temperature']})  {g['difference']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]")
        assert 0 <= row["tuned"]["best_pass@1"]["value"] <= 1 and g["problems"] == 100
    assert "Rounds" in (tmp_path / "rounds" / "report.html").read_text()

    ssd("sweep", "--config", cfg, "--out", tmp_path / "sweep", "--grid", "sample.temperature=1.0,1.5",
        "--eval-temperatures", "0,0.9", "--no-progress", check=True, timeout=1500)
    res = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert len(res["points"]) == 2 and (tmp_path / "sweep" / "sweep.png").is_file()
    print((tmp_path / "sweep" / "sweep.md").read_text())
