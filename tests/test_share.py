"""`ssd export` / `ssd push` / train.push_to_hub: Hub-ready folders with cards rendered from a real run (the quick
demo: three arms, analysis), the dataset TRL's own CLI trains on exactly as `ssd train` does, and the upload through
huggingface_hub's own calls to a Hub on localhost (fake_hub.py says what that leaves untested)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_jsonl, ssd, write_train_file
from fake_hub import FakeHub


def _run_copy(quick_demo, tmp_path):
    """The session's demo run, copied (a push writes RUN/hub)."""
    out, _ = quick_demo
    run = tmp_path / "demo"
    shutil.copytree(out, run, ignore=shutil.ignore_patterns("checkpoints", "samples", "report_files"))
    return run


def test_export_writes_a_hub_ready_model_and_dataset_with_cards_from_a_real_run(quick_demo, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, ModelCard
    from transformers import AutoModelForCausalLM

    run, _ = quick_demo
    out = tmp_path / "export"
    r = ssd("export", run, "--out", out, "--repo-id", "alice/tiny-ssd", check=True)
    assert "dataset: train" in r.stdout
    comp = json.loads((run / "eval" / "comparison.json").read_text())
    cfg = json.loads((run / "run.json").read_text())["config"]

    # the model: the trained files byte for byte (less transformers' pickled arguments), loadable, decoding at SSD's T_eval
    for f in (run / "train" / "model").iterdir():
        if f.name not in ("training_args.bin", "generation_config.json"):
            assert (out / "model" / f.name).read_bytes() == f.read_bytes(), f.name
    assert not (out / "model" / "training_args.bin").exists() and (out / "model" / "ssd_config.yaml").is_file()
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    best_t = float(comp["tuned"]["best_temperature"])
    gen = model.generation_config
    if best_t > 0:
        assert gen.do_sample and gen.temperature == best_t and gen.top_p == cfg["eval"]["top_p"]
    else:
        assert gen.do_sample is False

    card = ModelCard.load(out / "model" / "README.md")
    d = card.data
    assert d.base_model is None and d.datasets == ["alice/tiny-ssd-samples"]  # a local base has no Hub id
    assert d.pipeline_tag == "text-generation" and {"simplesd", "ssd"} <= set(d.tags)
    best = comp["tuned"]["by_temperature"][comp["tuned"]["best_temperature"]]
    assert {e.metric_type: e.metric_value for e in d.eval_results} == {k: round(v, 4) for k, v in best.items()}
    assert {e.dataset_type for e in d.eval_results} == {"livecodebench/code_generation_lite"}
    text = card.text
    assert "`" + cfg["model"]["name_or_path"] + "` (a local model)" in text
    s = cfg["sample"]
    assert f"T_train {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}" in text
    header = next(line for line in text.splitlines() if line.startswith("| T_eval"))
    assert all(f"{arm} pass@1" in header for arm in ("base", "control", "SSD"))
    for key in ("best_vs_best_pass@1", "ssd_vs_control_pass@1"):  # the paired differences with their CIs
        x = comp[key]
        assert f"{x['difference']:+.3f} pass@1 (95% CI {x['ci95'][0]:+.3f} to {x['ci95'][1]:+.3f}" in text
    prompts = json.loads((run / "sample" / "prompts.json").read_text())
    assert "## Prompts" in text and f"| {prompts['counts']['read']} |" in text and "Decontamination" in text
    import trl

    assert f"trl {trl.__version__}" in text and "## Lock and fork positions" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 5 and all((out / "model" / link).is_file() for link in links)
    assert "KL(SSD\\|\\|base)" in text  # a `|` inside a table cell is escaped

    # the dataset: what was trained on (and the held-out samples), in TRL's columns, with the exact token ids
    ds = load_dataset(str(out / "dataset"))
    rows, held = read_jsonl(run / "filter" / "train.jsonl"), read_jsonl(run / "filter" / "heldout.jsonl")
    assert ds["train"].num_rows == len(rows) and ds["heldout"].num_rows == len(held)
    for got, want in zip(ds["train"], rows):
        assert got["input_ids"] == want["prompt_ids"] + want["completion_ids"]
        assert got["completion_mask"] == [0] * len(want["prompt_ids"]) + [1] * len(want["completion_ids"])
        assert got["prompt"] == want["messages"][:-1] and got["completion"] == want["messages"][-1:]
        assert (got["prompt_id"], got["finish_reason"]) == (want["prompt_id"], want["finish_reason"])
    dcard = DatasetCard.load(out / "dataset" / "README.md")
    assert [c["split"] for c in dcard.data.configs[0]["data_files"]] == ["train", "heldout"]
    assert "trl sft --model_name_or_path" in dcard.text and "[alice/tiny-ssd](https://huggingface.co/alice/tiny-ssd)" in dcard.text
    record = json.loads((out / "export.json").read_text())
    assert record["dataset_rows"] == {"train": len(rows), "heldout": len(held)} and record["repo_id"] == "alice/tiny-ssd"

    # the same export again is fine; another directory's files are never replaced without --overwrite
    assert ssd("export", run, "--out", out, "--repo-id", "alice/tiny-ssd").returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = ssd("export", run, "--out", other)
    assert r.returncode == 2 and "not an export" in r.stderr and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    r = ssd("export", tmp_path / "other", "--out", tmp_path / "x")
    assert r.returncode == 2 and "not a finished run" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # (three trainings, two of them TRL CLI processes: ~45 s)
def test_trl_cli_trains_on_the_exported_dataset_exactly_as_ssd_train(quick_demo, tmp_path):
    """The issue's finding, measured: `trl sft --dataset_name RUN/filter` trains the prompt tokens too (the
    messages column is rendered and trained whole); on `ssd export`'s dataset, with the command the card prints,
    TRL's own CLI gives ssd train's losses step for step."""
    from simplesd.config import load_config
    from simplesd.train import train, trl_command

    run, _ = quick_demo
    ssd("export", run, "--out", tmp_path / "export", check=True)
    cfg = load_config(run / "config.yaml")
    cfg.train.max_steps, cfg.train.logging_steps, cfg.train.save_steps = 3, 1, 3
    cfg.train.effective_batch_size, cfg.train.per_device_batch_size = 8, 4
    cfg.train.report_to = ["none"]
    train(cfg, run / "filter" / "train.jsonl", tmp_path / "ours", progress=False)
    ours = [h["loss"] for h in json.loads((tmp_path / "ours" / "log_history.json").read_text()) if "loss" in h]

    def trl_losses(dataset, out):
        cmd = trl_command(cfg, dataset, str(out), here=True) + ["--report_to", "none", "--save_steps", "3"]
        cmd[0] = shutil.which("trl", path=str(Path(sys.executable).parent))  # the venv's `trl`, as users run it
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
        return [h["loss"] for h in state["log_history"] if "loss" in h]

    assert trl_losses(tmp_path / "export" / "dataset", tmp_path / "trl") == pytest.approx(ours, abs=1e-5)
    whole = trl_losses(run / "filter", tmp_path / "trl-filter")
    assert whole[0] > 10 * ours[0], (whole, ours)  # prompt tokens trained: another objective


def test_push_uploads_the_export_with_huggingface_hub(quick_demo, tmp_path):
    run = _run_copy(quick_demo, tmp_path)
    with FakeHub() as hub:
        r = ssd("push", run, "--repo-id", "alice/tiny-ssd", "--private", env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake"})
    assert r.returncode == 0, r.stderr
    assert [(x["type"], x["organization"], x["name"], x["visibility"]) for x in hub.repos] == [
        ("model", "alice", "tiny-ssd", "private"), ("dataset", "alice", "tiny-ssd-samples", "private")]
    model, data = hub.commits
    staged = run / "hub"
    for commit, kind, repo, folder in ((model, "models", "alice/tiny-ssd", "model"),
                                       (data, "datasets", "alice/tiny-ssd-samples", "dataset")):
        assert (commit["kind"], commit["repo"], commit["token"]) == (kind, repo, "Bearer hf_fake")
        files = {p.relative_to(staged / folder).as_posix(): p.read_bytes() for p in (staged / folder).rglob("*") if p.is_file()}
        assert commit["files"] == files  # every file, byte for byte
    assert "model.safetensors" in model["files"] and "data/train-00000-of-00001.parquet" in data["files"]
    assert json.loads((staged / "export.json").read_text())["pushed"]["model"].startswith(hub.url)
    assert r.stderr.strip() == ""  # (no line per HTTP request)

    with FakeHub(refuse_token=True) as hub:  # a token the Hub refuses: the user's to fix, in one line
        r = ssd("push", run, "--repo-id", "alice/tiny-ssd", env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_bad"})
    assert r.returncode == 2 and "HF_TOKEN" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = ssd("push", run, "--repo-id", "alice/tiny-ssd", env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_x"})
    assert r.returncode == 1 and "ssd: failed: push to alice/tiny-ssd" in r.stderr and f"{staged}" in r.stderr
    assert ssd("push", run, "--repo-id", "not a repo").returncode == 2


def test_train_push_to_hub_names_the_base_and_refuses_early_without_a_token(tmp_path, tiny_model):
    # a base in the Hugging Face cache layout is recognised as its Hub id (the card's base_model, TRL's card too)
    snap = tmp_path / "hf" / "models--Qwen--Qwen3-4B-Instruct-2507" / "snapshots" / "abc123"
    shutil.copytree(tiny_model, snap)
    data = write_train_file(tmp_path / "train.jsonl", n=8)
    common = ["train", "--model", snap, "--data", data, "train.learning_rate=3e-3", "train.effective_batch_size=4",
              "train.per_device_batch_size=2", "train.epochs=1", "train.max_seq_length=256", "train.save_steps=2",
              "train.push_to_hub=true", "train.hub_model_id=alice/tiny-ssd"]
    r = ssd(*common, "--out", tmp_path / "nothing", env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "no-login")})
    assert r.returncode == 2 and "no Hugging Face token" in r.stderr and not (tmp_path / "nothing").exists()
    with FakeHub() as hub:
        r = ssd(*common, "--out", tmp_path / "t", env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake"})
    assert r.returncode == 0, r.stderr
    # a bare `ssd train` output: the model alone, its card says how it was trained
    assert [c["repo"] for c in hub.commits] == ["alice/tiny-ssd"]
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "t" / "hub" / "model" / "README.md")
    assert card.data.base_model == "Qwen/Qwen3-4B-Instruct-2507" and "## How it was made" in card.text
    assert "## Results" not in card.text and hub.commits[0]["files"]["README.md"] == (tmp_path / "t" / "hub" / "model" / "README.md").read_bytes()
    ckpt = ModelCard.load(tmp_path / "t" / "checkpoints" / "README.md")  # TRL's own card
    assert ckpt.data.base_model == "Qwen/Qwen3-4B-Instruct-2507" and "[None]" not in ckpt.text
    # a log file gets a line per logged step, not redraws
    assert "train: step 2/2 (100%) loss" in r.stdout and "\r" not in r.stdout + r.stderr
