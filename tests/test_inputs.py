"""Every bad input gets one clear line (file, record, key or flag, and what is wrong) and exit status 2, with nothing
half-written; no rerun deletes work unless --overwrite says so. One test per case of issue 18."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HUMANEVAL, ROOT, read_jsonl, ssd, write_train_file

from simplesd.cli import main


@pytest.fixture()
def cli(capsys):
    """`ssd ARGS` in this process: (exit status, stdout, stderr). The environment it changes (--no-progress) and
    the libraries' progress-bar switches are restored after."""
    import huggingface_hub.utils

    env = dict(os.environ)

    def run(*args):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    os.environ.clear()
    os.environ.update(env)
    huggingface_hub.utils.enable_progress_bars()
    for name in ("transformers.utils.logging", "datasets.utils.logging"):
        if name in sys.modules:
            sys.modules[name].enable_progress_bar()


def one_error_line(err: str) -> str:
    """The error line; also checks it is the only line that is not a log line and that no traceback was printed."""
    lines = [line for line in err.strip().splitlines() if " INFO " not in line and " WARNING " not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _sample_args(model, prompts, out, *extra):
    return ("sample", "--model", model, "--prompts", prompts, "--out", out, "--no-progress",
            "sample.max_new_tokens=8", *extra)


# ---------------------------------------------------------------------------------------------------------
# Files that are not what they should be


def test_binary_and_corrupt_gzip_prompts(tmp_path, tiny_model, cli):
    binary = tmp_path / "problems.jsonl"
    binary.write_bytes(b'{"question": "ok"}\n' + bytes(range(128, 256)) + b"\n")
    code, _, err = cli(*_sample_args(tiny_model, binary, tmp_path / "s"))
    assert code == 2 and one_error_line(err) == f"ssd: error: {binary}: not UTF-8 text (byte 0x80); is it a binary file?"
    broken = tmp_path / "problems.jsonl.gz"
    whole = gzip.compress("".join(json.dumps({"question": f"problem {i}"}) + "\n" for i in range(500)).encode())
    broken.write_bytes(whole[: len(whole) // 2])  # a download that stopped half way
    code, _, err = cli(*_sample_args(tiny_model, broken, tmp_path / "s"))
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {broken}: not a readable gzip file")
    notgz = tmp_path / "plain.jsonl.gz"
    notgz.write_text('{"question": "ok"}\n')
    code, _, err = cli(*_sample_args(tiny_model, notgz, tmp_path / "s"))
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {notgz}: not a readable gzip file")
    assert not (tmp_path / "s").exists()  # nothing written


@pytest.mark.parametrize("command", ["sample", "filter", "check", "train", "evaluate", "analyze", "decontaminate"])
def test_out_naming_an_existing_file(tmp_path, tiny_model, problems_file, cli, command):
    out = tmp_path / "taken.txt"
    out.write_text("mine\n")
    args = {
        "sample": _sample_args(tiny_model, problems_file, out),
        "filter": ("filter", "--samples", problems_file, "--out", out),
        "check": ("check", "--benchmark", "humaneval", "--problems", HUMANEVAL, "--solutions", problems_file, "--out", out),
        "train": ("train", "--model", tiny_model, "--data", problems_file, "--out", out),
        "evaluate": ("evaluate", "--model", tiny_model, "--benchmark", "humaneval", "--problems", HUMANEVAL, "--out", out),
        "analyze": ("analyze", "--base", tiny_model, "--tuned", tiny_model, "--texts", problems_file, "--out", out),
        "decontaminate": ("decontaminate", "--prompts", problems_file, "--against", f"humaneval:{HUMANEVAL}", "--out", out),
    }[command]
    t0 = time.time()
    code, _, err = cli(*args)
    assert code == 2 and one_error_line(err) == f"ssd: error: {out}: --out must be a directory, but it is an existing file"
    assert out.read_text() == "mine\n" and time.time() - t0 < 20  # refused first, not after the work
    code, _, err = cli(*[a if a != out else out / "sub" for a in args])  # a file above it
    assert code == 2 and f"but {out} is an existing file" in one_error_line(err)


def _model_copy(tiny_model, tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(tiny_model, dst)
    return dst


def test_truncated_weights_missing_weights_and_missing_model(tmp_path, tiny_model, problems_file, cli):
    model = _model_copy(tiny_model, tmp_path)
    weights = model / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, size // 2)
    for args in (_sample_args(model, problems_file, tmp_path / "s"),
                 ("train", "--model", model, "--data", write_train_file(tmp_path / "t.jsonl"), "--out", tmp_path / "t")):
        code, _, err = cli(*args)
        assert code == 2 and one_error_line(err) == (
            f"ssd: error: {weights}: truncated ({size // 2:,} bytes; its header needs {size:,}); download or save the "
            "model again")
    weights.unlink()
    code, _, err = cli(*_sample_args(model, problems_file, tmp_path / "s"))
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {model}: no weights (model.safetensors")
    for missing in (tmp_path / "nowhere" / "model", "./nowhere"):
        code, _, err = cli(*_sample_args(missing, problems_file, tmp_path / "s"))
        assert code == 2 and one_error_line(err) == (
            f"ssd: error: {missing}: model directory not found (and it is not a hub id: those are NAME or ORG/NAME)")
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()  # no prompts.json, no stage.json


def test_ctrl_c_during_sample_is_one_line_and_the_rerun_resumes(tmp_path, tiny_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"question_id": f"q{i}", "question": f"Problem {i}" + " x" * i}) + "\n"
                               for i in range(96)))  # 24 shards: enough left to do when the signal comes
    args = [sys.executable, "-m", "simplesd.cli", *map(str, _sample_args(
        tiny_model, prompts, tmp_path / "a", "sample.max_new_tokens=48", "sample.shard_size=4", "sample.batch_size=4"))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((tmp_path / "a").glob("shard-*.jsonl")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "ssd: interrupted; rerun the same command to resume"
    written = sorted(p.name for p in (tmp_path / "a").glob("shard-*.jsonl"))
    assert 0 < len(written) < 24 and not list((tmp_path / "a").glob("*.tmp"))  # whole shards only
    # the same command resumes, and ends with what an uninterrupted run writes, byte for byte
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and f"resuming, {len(written)} of 24 shards already written" in r.stderr
    whole = args[:]
    whole[whole.index(str(tmp_path / "a"))] = str(tmp_path / "b")
    subprocess.run(whole, capture_output=True, text=True, timeout=600, check=True)
    for i in range(24):
        name = f"shard-{i:05d}.jsonl"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------------------
# Config files and values


@pytest.mark.parametrize("text, message", [
    (b"sample:\n  temperature: 1.0\n   top_k: 5\n", ":3:9: malformed YAML (mapping values are not allowed here)"),
    (b"sample:\n  temperature: [1.0\n", ":3:1: malformed YAML (while parsing a flow sequence"),
    (b"sample:\n  temperature: \xff\n", ": not UTF-8 text (byte 0xff); is it a binary file?"),
    (b"sample:\n  temperature: 1.0\ntrain:\n  epochs: 2\nsample:\n  n: 3\n", ":5:1: key 'sample' appears twice (first on line 1)"),
    (b"sample:\n  temperature: 1.0\n  temperature: 2.0\n", ":3:3: key 'temperature' appears twice (first on line 2)"),
], ids=["bad-indent", "unclosed", "binary", "section-twice", "key-twice"])
def test_bad_yaml_names_line_and_column(tmp_path, cli, text, message):
    """Malformed YAML and a key given twice (PyYAML would keep the last one silently) name file:line:column."""
    p = tmp_path / "c.yaml"
    p.write_bytes(text)
    code, _, err = cli("config", "show", "--config", p)
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {p}{message}")


def test_relative_paths_in_a_yaml_file_are_relative_to_the_file(tmp_path, tiny_model, problems_file, monkeypatch):
    from simplesd.config import load_config, write_config

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(problems_file, project / "data" / "problems.jsonl")
    shutil.copytree(tiny_model, project / "models" / "tiny")
    (project / "configs").mkdir()
    (project / "configs" / "run.yaml").write_text(
        "model:\n  name_or_path: ../models/tiny\nprompts:\n  path: ../data/problems.jsonl\n"
        "  decontaminate_against: ['humaneval:../data/he.jsonl.gz']\neval:\n  problems: livecodebench/code_generation_lite\n"
        "output_dir: ../runs/x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(project / "configs" / "run.yaml")
    assert Path(cfg.model.name_or_path) == project / "models" / "tiny"
    assert Path(cfg.prompts.path) == project / "data" / "problems.jsonl"
    assert cfg.prompts.decontaminate_against == [f"humaneval:{project / 'data' / 'he.jsonl.gz'}"]
    assert cfg.eval.problems == "livecodebench/code_generation_lite"  # a hub id stays one
    assert Path(cfg.output_dir) == project / "runs" / "x"
    # a hub id in a file stays a hub id; on the command line paths are relative to the working directory
    (project / "configs" / "hub.yaml").write_text("model:\n  name_or_path: Qwen/Qwen3-4B-Instruct-2507\n")
    assert load_config(project / "configs" / "hub.yaml").model.name_or_path == "Qwen/Qwen3-4B-Instruct-2507"
    assert load_config(None, ["prompts.path=data/p.jsonl"]).prompts.path == "data/p.jsonl"
    # a config written into a directory (a run's config.yaml) reads back to the same paths from anywhere
    monkeypatch.chdir(project)
    rel = load_config(None, ["model.name_or_path=models/tiny", "prompts.path=data/problems.jsonl", "output_dir=runs/y"])
    write_config(rel, project / "runs" / "y" / "config.yaml")
    monkeypatch.chdir(elsewhere)
    back = load_config(project / "runs" / "y" / "config.yaml")
    assert Path(back.model.name_or_path).resolve() == project / "models" / "tiny"
    assert Path(back.prompts.path).resolve() == project / "data" / "problems.jsonl"
    assert Path(back.output_dir).resolve() == project / "runs" / "y"
    # the shipped recipes name the data and the runs from the repository root, whatever the working directory
    recipe = load_config(ROOT / "configs" / "qwen3-4b-instruct-2507.yaml")
    assert Path(recipe.prompts.path) == ROOT / "data" / "rstar-coder-seed.jsonl"
    assert Path(recipe.output_dir) == ROOT / "runs" / "qwen3-4b-instruct"


def test_evaluate_n_zero_and_other_bad_flags(tmp_path, tiny_model, cli):
    for flags, message in (
        (("--n", "0"), "argument --n: must be >= 1, got 0"),
        (("--n", "two"), "argument --n: expected an integer, got 'two'"),
        (("--temperature", "-1"), "argument --temperature: must be >= 0.0, got -1"),
        (("--top-p", "1.5"), "argument --top-p: must be > 0.0 and <= 1.0, got 1.5"),
    ):
        code, _, err = cli("evaluate", "--model", tiny_model, "--benchmark", "humaneval", "--problems", HUMANEVAL,
                           "--out", tmp_path / "e", *flags)
        assert code == 2 and one_error_line(err) == f"ssd evaluate: error: {message} (see `ssd evaluate --help`)"
    for args, message in ((("run", "--rounds", "0"), "ssd run: error: argument --rounds: must be >= 1, got 0"),
                          (("estimate", "--prompts-count", "0"), "ssd estimate: error: argument --prompts-count: must be >= 1, got 0"),
                          (("sweep", "--point", "-1", "--out", tmp_path / "w"), "ssd sweep: error: argument --point: must be >= 0, got -1")):
        code, _, err = cli(*args)
        assert code == 2 and one_error_line(err).startswith(message)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "config key 'train.epochs': must be > 0 (or set train.max_steps), got 0: nothing would be trained"),
    ("train.epochs=-1", "config key 'train.epochs': must be > 0"),
    ("train.max_seq_length=0", "config key 'train.max_seq_length': must be >= 1, got 0"),
    ("train.max_seq_length=-5", "config key 'train.max_seq_length': must be >= 1, got -5"),
    ("train.save_steps=0", "config key 'train.save_steps': must be >= 1, got 0"),
    ("train.max_steps=0", "config key 'train.max_steps': must be >= 1, or -1"),
    ("train.lora.r=0", "config key 'train.lora.r': must be >= 1, got 0"),
    ("train.lora.dropout=1.0", "config key 'train.lora.dropout': must be in [0, 1)"),
    ("eval.timeout=-1", "config key 'eval.timeout': must be > 0 seconds or null"),
    ("eval.timeout=0", "config key 'eval.timeout': must be > 0 seconds or null"),
    ("eval.workers=0", "config key 'eval.workers': must be >= 1 or null"),
    ("eval.memory_mb=10", "config key 'eval.memory_mb': must be >= 64"),
    ("eval.start_month=2025-13", "config key 'eval.start_month': must be YYYY-MM or null"),
    ("eval.difficulties=easy,extreme", "config key 'eval.difficulties[1]': must be easy, medium or hard"),
    ("eval.temperatures=0.6,-1", "config key 'eval.temperatures[1]': must be >= 0"),
])
def test_out_of_range_values_name_the_key(tmp_path, tiny_model, cli, override, message):
    data = write_train_file(tmp_path / "t.jsonl")
    section = override.split(".")[0]
    args = (("train", "--model", tiny_model, "--data", data, "--out", tmp_path / "o") if section == "train" else
            ("evaluate", "--model", tiny_model, "--benchmark", "humaneval", "--problems", HUMANEVAL, "--out", tmp_path / "o"))
    code, _, err = cli(*args, override)
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {message}")
    assert not (tmp_path / "o").exists()
    # set in a YAML file, the error names the file too
    p = tmp_path / "c.yaml"
    key, value = override.split("=")
    *parents, leaf = key.split(".")
    p.write_text("".join(f"{'  ' * i}{k}:\n" for i, k in enumerate(parents)) + f"{'  ' * len(parents)}{leaf}: "
                 + (f"[{value}]" if "," in value else value) + "\n")
    code, _, err = cli(*args, "--config", p)
    assert code == 2 and one_error_line(err).startswith(f"ssd: error: {p}: {message}")


# ---------------------------------------------------------------------------------------------------------
# Output directories that hold other work


def _shards(d):
    return {p.name: p.read_bytes() for p in sorted(d.glob("shard-*.jsonl"))}


def test_sample_dir_of_another_config_is_refused_then_overwritten_on_purpose(tmp_path, tiny_model, problems_file, cli):
    out = tmp_path / "s"
    code, _, err = cli(*_sample_args(tiny_model, problems_file, out))
    assert code == 0, err
    before, stage = _shards(out), (out / "stage.json").read_text()
    code, _, err = cli(*_sample_args(tiny_model, problems_file, out, "sample.temperature=1.0", "sample.top_k=5"))
    assert code == 2 and one_error_line(err) == (
        f"ssd: error: {out}: holds sample output of another config or other inputs (sample.temperature: 1.5 -> 1.0; "
        "sample.top_k: 20 -> 5); rerun with --overwrite to delete it and start over, or choose another output directory")
    assert _shards(out) == before and (out / "stage.json").read_text() == stage  # nothing deleted or rewritten
    # other inputs: the same, naming the input
    other = tmp_path / "other.jsonl"
    other.write_text(problems_file.read_text().replace("please", "now"))
    code, _, err = cli(*_sample_args(tiny_model, other, out))
    assert code == 2 and "input 'prompts' changed" in one_error_line(err) and _shards(out) == before
    # the same config resumes (here: nothing to do)
    code, _, err = cli(*_sample_args(tiny_model, problems_file, out))
    assert code == 0 and "complete for this config" in err and _shards(out) == before
    # --overwrite starts over on purpose, and says what it deleted
    code, _, err = cli(*_sample_args(tiny_model, problems_file, out, "sample.temperature=1.0", "--overwrite"))
    assert code == 0 and "--overwrite: deleting" in err and "sample.temperature: 1.5 -> 1.0" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["sample"]["temperature"] == 1.0 and _shards(out) != before
    # a directory another stage wrote is never this one's
    code, _, err = cli("filter", "--samples", out, "--out", out)
    assert code == 2 and one_error_line(err) == (f"ssd: error: {out}: holds the output of `ssd sample`, not of `ssd "
                                                 "filter`; choose another output directory")


def test_filter_and_train_dirs_of_another_config_are_refused(tmp_path, tiny_model, problems_file, cli):
    samples = tmp_path / "s"
    assert cli(*_sample_args(tiny_model, problems_file, samples, "sample.n=2"))[0] == 0
    f = tmp_path / "f"
    code, out, _ = cli("filter", "--samples", samples, "--out", f)
    train_rows, held = len(read_jsonl(f / "train.jsonl")), len(read_jsonl(f / "heldout.jsonl"))
    # train and heldout are printed apart: "kept 22 of 24" alone hides the held-out rows
    assert code == 0 and out.strip() == (f"filter: kept {train_rows + held} of 24: {train_rows} -> {f}/train.jsonl, "
                                         f"{held} held out -> {f}/heldout.jsonl") and held > 0
    kept = (f / "train.jsonl").read_bytes()
    code, _, err = cli("filter", "--samples", samples, "--out", f, "filter.drop_shortest_fraction=0.5")
    assert code == 2 and "(filter.drop_shortest_fraction: 0.1 -> 0.5)" in one_error_line(err)
    assert (f / "train.jsonl").read_bytes() == kept
    # a train.jsonl no simplesd stage wrote is not replaced either
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.jsonl").write_text("my own rows\n")
    code, _, err = cli("filter", "--samples", samples, "--out", mine)
    assert code == 2 and "already holds train.jsonl" in one_error_line(err)
    assert (mine / "train.jsonl").read_text() == "my own rows\n"

    t = tmp_path / "t"
    data = write_train_file(tmp_path / "train.jsonl")
    base = ("train", "--model", tiny_model, "--data", data, "--out", t, "--no-progress", "train.learning_rate=3e-3",
            "train.effective_batch_size=4", "train.max_seq_length=256", "train.save_steps=2", "train.max_steps=2")
    assert cli(*base)[0] == 0
    ckpts = sorted(p.name for p in (t / "checkpoints").iterdir())
    code, _, err = cli(*base, "train.learning_rate=1e-3")
    assert code == 2 and "(train.learning_rate: 0.003 -> 0.001)" in one_error_line(err)
    assert sorted(p.name for p in (t / "checkpoints").iterdir()) == ckpts and (t / "model").is_dir()
    code, _, err = cli(*base, "train.learning_rate=1e-3", "--overwrite")
    assert code == 0 and json.loads((t / "manifest.json").read_text())["config"]["train"]["learning_rate"] == 1e-3


def test_humaneval_killed_and_resumed_samples_all_164_once(tmp_path, tiny_model):
    """Prompt hygiene keeps every HumanEval problem (none is a duplicate), and a kill -9 mid-run then a rerun ends
    with each of the 164 sampled exactly once."""
    args = [sys.executable, "-m", "simplesd.cli", *map(str, _sample_args(
        tiny_model, HUMANEVAL, tmp_path / "s", "sample.max_new_tokens=4", "sample.shard_size=8",
        "sample.batch_size=8"))]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(list((tmp_path / "s").glob("shard-*.jsonl"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert 3 <= len(list((tmp_path / "s").glob("shard-*.jsonl"))) < 21
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    ids = [rec["prompt_id"] for p in sorted((tmp_path / "s").glob("shard-*.jsonl")) for rec in read_jsonl(p)]
    assert len(ids) == len(set(ids)) == 164
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["prompts"]["read"] == m["prompts"]["selected"] == 164 and m["counts"]["shards_resumed"] >= 3


def test_no_progress_hides_every_bar(tmp_path, tiny_model, problems_file):
    """Output that is not a terminal (here: captured) gets simplesd's progress as lines and no library bar (loading
    weights, tokenizing, writing shards); --no-progress hides the lines too. (In a terminal the bars are drawn:
    test_progress.py.)"""
    bar = re.compile(r"\d+/\d+ \[|it/s\]|s/it\]")
    data = write_train_file(tmp_path / "t.jsonl")
    for flag in ([], ["--no-progress"]):
        sample = ssd("sample", "--model", tiny_model, "--prompts", problems_file, "--out", tmp_path / f"s{len(flag)}",
                     "sample.max_new_tokens=4", *flag, check=True)
        train = ssd("train", "--model", tiny_model, "--data", data, "--out", tmp_path / f"t{len(flag)}",
                    "train.max_steps=1", "train.effective_batch_size=4", "train.max_seq_length=128", *flag, check=True)
        text = sample.stderr + train.stderr
        assert not bar.search(text) and "\r" not in text and "Loading weights" not in text, text
        assert ("sample: 12/12 prompts (100%)" in sample.stderr) is not bool(flag)


def test_demo_and_build_configs_are_checked_before_any_work(tmp_path, cli):
    """`ssd demo --config` and `ssd testbed build --config` read YAML files of their own shape: a key that is not
    theirs is one line naming the file and the key, with a suggestion, and nothing is written."""
    bad_demo = tmp_path / "demo.yaml"
    bad_demo.write_text("ssd:\n  sample:\n    temprature: 1.0\n")
    code, _, err = cli("demo", "--quick", "--config", bad_demo, "--out", tmp_path / "d", "--no-progress")
    assert code == 2 and "unknown config key 'sample.temprature' (did you mean 'sample.temperature'?)" in err
    assert str(bad_demo) in err and not (tmp_path / "d").exists()
    bad_demo.write_text("sample:\n  temperature: 1.0\n")  # an SSD config where a demo config belongs
    code, _, err = cli("demo", "--config", bad_demo, "--out", tmp_path / "d", "--no-progress")
    assert code == 2 and "a demo config has the sections ssd, quick and ablation, got ['sample']" in err
    bad_build = tmp_path / "build.yaml"
    bad_build.write_text("hidden_sise: 128\n")
    code, _, err = cli("testbed", "build", "--config", bad_build, "--out", tmp_path / "b", "--no-progress")
    assert code == 2 and f"{bad_build}: unknown build setting 'hidden_sise' (did you mean 'hidden_size'?)" in err
    bad_build.write_text("hidden_size: big\n")
    code, _, err = cli("testbed", "build", "--config", bad_build, "--out", tmp_path / "b", "--no-progress")
    assert code == 2 and "build setting 'hidden_size': expected int, got 'big'" in err and not (tmp_path / "b").exists()
