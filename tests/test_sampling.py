import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import read_jsonl, ssd

from simplesd.chat import encode
from simplesd.config import Decoding, SSDConfig
from simplesd.models import stop_token_ids
from simplesd.sample import sample
from simplesd.sampling.backends import SeededDraw, generate_batch, generation_kwargs, sample_seed
from simplesd.sampling.flags import looping, sample_flags


def dec(temperature, top_k, top_p, min_p, max_new_tokens=1, n=1, seed=0):
    return Decoding(temperature, top_k, top_p, min_p, n, max_new_tokens, seed)


def reference_distribution(logits, temperature, top_k, top_p, min_p):
    """The documented order written out directly: temperature, top-k, top-p, min-p, renormalise."""
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if top_k:
        kth = torch.topk(probs, top_k).values[..., -1:]
        keep &= probs >= kth
    if top_p < 1:
        q = torch.where(keep, probs, 0.0)
        q = q / q.sum(-1, keepdim=True)
        sorted_q, idx = torch.sort(q, descending=True)
        mass_before = torch.cumsum(sorted_q, -1) - sorted_q
        nucleus = torch.zeros_like(keep).scatter(-1, idx, mass_before < top_p)
        keep &= nucleus
    if min_p:
        q = torch.where(keep, probs, 0.0)
        keep &= q >= min_p * q.max(-1, keepdim=True).values
    out = torch.where(keep, probs, 0.0)
    return out / out.sum(-1, keepdim=True)


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    # a random model is nearly uniform; sharpen it so that every truncation cuts a real tail
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    return model, tok


@pytest.mark.parametrize("temperature, top_k, top_p, min_p", [
    (1.5, 20, 0.8, 0.0),   # the paper's T_train truncation
    (0.6, 20, 0.95, 0.0),  # a typical T_eval
    (1.0, 0, 0.7, 0.0),    # top-p alone
    (2.0, 5, 1.0, 0.0),    # top-k alone
    (1.5, 20, 0.8, 0.2),   # all four
])
def test_generate_draws_from_the_documented_distribution(model_and_tokenizer, temperature, top_k, top_p, min_p):
    model, tok = model_and_tokenizer
    enc = tok(["<|im_start|>user\nwrite code<|im_end|>\n<|im_start|>assistant\n", "def f(x):\n    return"],
              return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    kwargs = generation_kwargs(dec(temperature, top_k, top_p, min_p, max_new_tokens=6, n=2))
    torch.manual_seed(0)
    out = model.generate(**enc, **kwargs, output_logits=True, output_scores=True, return_dict_in_generate=True,
                         pad_token_id=tok.pad_token_id, eos_token_id=[])
    support_sizes = []
    for raw, processed in zip(out.logits, out.scores):
        expected = reference_distribution(raw, temperature, top_k, top_p, min_p)
        actual = torch.softmax(processed.double(), dim=-1)
        assert torch.equal(expected > 0, actual > 0), "different support"
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
        support_sizes += (expected > 0).sum(-1).tolist()
    # the truncation really bites, so the comparison above is not vacuous
    assert max(support_sizes) <= (top_k or 10**9)
    assert min(support_sizes) < min(top_k or 10**9, len(tok)) or top_p == 1.0


def test_generation_kwargs_neutralise_model_defaults():
    k = generation_kwargs(dec(1.5, 20, 0.8, 0.0, 64, 3))
    assert k["do_sample"] and k["temperature"] == 1.5 and k["top_k"] == 20 and k["top_p"] == 0.8
    assert k["min_p"] is None and k["repetition_penalty"] == 1.0 and k["num_return_sequences"] == 3
    g = generation_kwargs(dec(0.0, 20, 0.8, 0.0, 64, 1))
    assert not g["do_sample"] and g["temperature"] is None


def test_generate_batch_counts_and_finish_reasons(model_and_tokenizer):
    model, tok = model_and_tokenizer
    stops = stop_token_ids(model, tok)
    texts = ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
             "<|im_start|>user\na much longer prompt than the other one<|im_end|>\n<|im_start|>assistant\n"]
    res = generate_batch(model, tok, encode(tok, texts), dec(1.5, 20, 0.8, 0.0, 12, 3), stops, seeds=list(range(6)))
    assert len(res) == 6
    lens = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert [r["prompt_tokens"] for r in res] == [lens[0]] * 3 + [lens[1]] * 3
    for r in res:
        assert 1 <= r["completion_tokens"] <= 12
        # a sample shorter than the cap ended on a stop token; one that ran out of tokens is exactly the cap long
        assert r["finish_reason"] in ("stop", "length")
        assert r["completion_tokens"] == 12 or r["finish_reason"] == "stop"
        assert r["finish_reason"] == "stop" or r["completion_tokens"] == 12
        assert "<|pad|>" not in r["output"] and "<|im_end|>" not in r["output"]
    # stop at EOS: make EOS certain and check it is reported as a stop that counts one token
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        saved = model.lm_head.weight[eos].clone()
        model.lm_head.weight[eos] = model.lm_head.weight[eos] + 1000 * model.model.norm(model.model.embed_tokens.weight).mean(0)
    try:
        res = generate_batch(model, tok, encode(tok, texts), dec(1.0, 0, 1.0, 0.0, 12, 1), stops, seeds=[1, 2])
    finally:
        with torch.no_grad():
            model.lm_head.weight[eos] = saved
    assert [(r["finish_reason"], r["completion_tokens"], r["output"]) for r in res] == [("stop", 1, "")] * 2


def _cfg(tiny_model, problems_file, **sample):
    cfg = SSDConfig()
    cfg.model.name_or_path = str(tiny_model)
    cfg.prompts.path = str(problems_file)
    cfg.sample.max_new_tokens = 16
    cfg.sample.n = 2
    cfg.sample.batch_size = 3
    cfg.sample.shard_size = 4
    for k, v in sample.items():
        setattr(cfg.sample, k, v)
    return cfg


def test_sample_writes_shards_records_and_manifest(tmp_path, tiny_model, problems_file):
    m = sample(_cfg(tiny_model, problems_file), tmp_path / "s", progress=False)
    shards = sorted((tmp_path / "s").glob("shard-*.jsonl"))
    assert len(shards) == 3 and m["counts"]["samples"] == 24 and m["counts"]["problems"] == 12
    recs = [r for s in shards for r in read_jsonl(s)]
    assert sorted((r["prompt_id"], r["sample_index"]) for r in recs) == sorted((f"q{i}", j) for i in range(12) for j in range(2))
    for r in recs:
        assert set(r) >= {"prompt_id", "prompt", "output", "finish_reason", "prompt_tokens", "completion_tokens", "seed"}
        assert r["prompt"].startswith("You will be given a question")
    # length-bucketed: prompts are processed longest first, in token length
    from transformers import AutoTokenizer

    from simplesd.chat import render
    from simplesd.prompts import load_problems, user_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model)
    length = {p.id: len(tok(render(tok, user_prompt(p)), add_special_tokens=False)["input_ids"])
              for p in load_problems(str(problems_file))}
    plan = json.loads((tmp_path / "s" / "plan.json").read_text())
    order = [pid for shard in plan["shards"] for pid in shard]
    assert [length[p] for p in order] == sorted(length.values(), reverse=True)
    assert [len(s) for s in plan["shards"]] == [4, 4, 4]
    # the manifest records config, versions, seeds, input hashes, counts and timings
    assert m["config"]["sample"]["top_k"] == 20 and m["environment"]["packages"]["transformers"]
    assert set(m["inputs"]) == {"model", "prompts"} and all(len(v) == 64 for v in m["inputs"].values())
    assert m["seeds"]["sample.seed"] == 0 and m["timings_s"]["total"] > 0
    assert all(r["seed"] == sample_seed(0, r["prompt_id"], r["sample_index"]) for r in recs)
    # the prompt set's story: 12 read, no duplicates, nothing to decontaminate against, all 12 sampled on
    assert m["prompts"] == {"read": 12, "exact_duplicates": 0, "normalised_duplicates": 0, "clean": 12, "offset": 0,
                            "selected": 12}
    assert json.loads((tmp_path / "s" / "prompts.json").read_text())["decontamination"]["checked"] is False
    assert {f: m["counts"][f] for f in ("truncated", "looping", "has_code", "has_think")} == {
        f: sum(bool(r[f]) for r in recs) for f in ("truncated", "looping", "has_code", "has_think")}
    assert m["counts"]["truncated"] == m["counts"]["finish_length"]
    assert m["counts"]["finish_stop"] + m["counts"]["finish_length"] == 24


def test_sampling_is_deterministic_and_seeded(tmp_path, tiny_model, problems_file):
    a = sample(_cfg(tiny_model, problems_file), tmp_path / "a", progress=False)
    b = sample(_cfg(tiny_model, problems_file), tmp_path / "b", progress=False)
    c = sample(_cfg(tiny_model, problems_file, seed=1), tmp_path / "c", progress=False)

    def outputs(d):
        return [r["output"] for s in sorted(d.glob("shard-*.jsonl")) for r in read_jsonl(s)]

    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")
    assert outputs(tmp_path / "a") != outputs(tmp_path / "c")
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]
    # a rerun of a complete stage is skipped: same manifest, nothing regenerated
    again = sample(_cfg(tiny_model, problems_file), tmp_path / "a", progress=False)
    assert again["finished_at"] == a["finished_at"]


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path, tiny_model, problems_file):
    args = ["sample", "--model", tiny_model, "--prompts", problems_file, "sample.max_new_tokens=400", "sample.n=2",
            "sample.batch_size=1", "sample.shard_size=2", "sample.device=cpu", "--no-progress"]
    ref = tmp_path / "ref"
    ssd(*args, "--out", ref, check=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "simplesd.cli", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("shard-*.jsonl"))) < 2:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = sorted(p.name for p in out.glob("shard-*.jsonl"))
    assert 2 <= len(written) < 6, "the run must be killed part-way for this test to mean anything"
    assert not (out / "manifest.json").exists()

    ssd(*args, "--out", out, check=True)
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["shards_resumed"] == len(written) and m["counts"]["samples"] == 24
    assert not list(out.glob(".*.tmp"))

    def records(d):
        return [(r["prompt_id"], r["sample_index"], r["output"], r["seed"])
                for s in sorted(d.glob("shard-*.jsonl")) for r in read_jsonl(s)]

    got = records(out)
    assert len(got) == len({(p, i) for p, i, _, _ in got}) == 24  # no duplicates, none lost
    assert got == records(ref)  # and exactly what an uninterrupted run writes
    assert all(seed == sample_seed(0, p, i) for p, i, _, seed in got)  # each sample's own seed


def test_fingerprint_counts_the_prompt_file_by_content_not_path(tmp_path, problems_file):
    """A run directory copied elsewhere (the demo's ablation reuses the base's evaluation) stays done."""
    from simplesd.manifest import fingerprint
    from simplesd.sample import sample_identity

    def sample_inputs(cfg):
        return fingerprint("sample", *sample_identity(cfg))

    copy = tmp_path / "elsewhere" / problems_file.name
    copy.parent.mkdir()
    copy.write_bytes(problems_file.read_bytes())
    cfgs = [SSDConfig(), SSDConfig()]
    cfgs[0].prompts.path, cfgs[1].prompts.path = str(problems_file), str(copy)
    assert sample_inputs(cfgs[0]) == sample_inputs(cfgs[1])
    copy.write_text(problems_file.read_text() + "\n" + json.dumps({"question_id": "extra", "question": "x"}) + "\n")
    assert sample_inputs(cfgs[0]) != sample_inputs(cfgs[1])


def test_an_unset_path_is_fingerprinted_by_name_not_as_the_current_directory(tmp_path, monkeypatch):
    """An unset model or prompts path ("") is not the current directory (Path("") is "."): hashing a checkout with
    its venv took 6 s per identity, and a file added there would have made finished stages "another config"."""
    from simplesd.io import fingerprint_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert fingerprint_path("") == "name:" and fingerprint_path(".") != "name:"
    (tmp_path / "more.txt").write_text("more")
    assert fingerprint_path("") == "name:"


def _records(d):
    return [(r["prompt_id"], r["sample_index"], r["output"], r["seed"], r["shard"])
            for s in sorted(Path(d).glob("shard-*.jsonl")) for r in read_jsonl(s)]


def test_replicas_write_the_same_samples_as_one_process(tmp_path, tiny_model, problems_file):
    """sample.data_parallel_size=2 starts two `ssd sample --worker I/2` processes that split the shards; the
    result is the single-process run's, record for record, and the manifest is the launcher's."""
    one = sample(_cfg(tiny_model, problems_file), tmp_path / "one", progress=False)
    two = sample(_cfg(tiny_model, problems_file, data_parallel_size=2), tmp_path / "two", progress=False)
    assert _records(tmp_path / "two") == _records(tmp_path / "one")
    assert two["fingerprint"] == one["fingerprint"]  # where the work ran does not change what was sampled
    assert two["replicas"] == 2 and two["backend"] == "transformers" and two["counts"]["samples"] == 24
    logs = sorted(p.name for p in (tmp_path / "two").glob("replica-*.log"))
    assert logs == ["replica-0.log", "replica-1.log"]
    assert "worker 1/2 done" in (tmp_path / "two" / "replica-1.log").read_text()


def test_worker_mode_writes_only_its_shards_then_a_plain_run_finishes(tmp_path, tiny_model, problems_file):
    """Several nodes: each runs `--worker I/N` on a shared directory; a plain run afterwards writes the manifest."""
    args = ["sample", "--model", tiny_model, "--prompts", problems_file, "sample.max_new_tokens=16", "sample.n=2",
            "sample.batch_size=3", "sample.shard_size=4", "--no-progress", "--out", tmp_path / "w"]
    r = ssd(*args, "--worker", "1/2", check=True)
    assert "worker 1/2 done" in r.stdout
    assert sorted(p.name for p in (tmp_path / "w").glob("shard-*.jsonl")) == ["shard-00001.jsonl"]
    assert not (tmp_path / "w" / "manifest.json").exists()
    ssd(*args, "--worker", "0/2", check=True)
    assert len(list((tmp_path / "w").glob("shard-*.jsonl"))) == 3
    r = ssd(*args, check=True)
    m = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert m["counts"]["shards_resumed"] == 3 and m["counts"]["samples"] == 24
    ref = sample(_cfg(tiny_model, problems_file), tmp_path / "ref", progress=False)
    assert _records(tmp_path / "w") == _records(tmp_path / "ref") and m["fingerprint"] == ref["fingerprint"]
    bad = ssd(*args, "--worker", "2/2")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "ssd: error: --worker: need 0 <= I < N, got '2/2'"


def test_vllm_backend_without_vllm_says_how_to_install(tmp_path, tiny_model, problems_file):
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here; tests/test_vllm.py tests the backend")
    except ImportError:
        pass
    r = ssd("sample", "--model", tiny_model, "--prompts", problems_file, "sample.backend=vllm", "--out", tmp_path / "v")
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("ssd: error: sample.backend=vllm needs vLLM: pip install 'simplesd[vllm]'")
    assert not list((tmp_path / "v").glob("shard-*"))


# a sample record's fields, in order (a record without `messages`: a single user turn); tests/test_vllm.py checks the
# vLLM backend's records against the same list
RECORD_FIELDS = ["prompt_id", "sample_index", "prompt", "output", "finish_reason", "prompt_tokens", "completion_tokens",
                 "truncated", "looping", "has_code", "has_think", "reasoning_unclosed", "thinking", "seed", "shard", "kind",
                 "meta", "prompt_token_ids", "completion_token_ids"]


def test_both_backends_write_records_with_the_same_fields_in_the_same_order(tmp_path, tiny_model, problems_file):
    """tests/test_vllm.py checks the vLLM backend's records against this exact field list."""
    sample(_cfg(tiny_model, problems_file), tmp_path / "s", progress=False)
    recs = [r for s in sorted((tmp_path / "s").glob("shard-*.jsonl")) for r in read_jsonl(s)]
    assert all(list(r) == RECORD_FIELDS for r in recs)


def test_seeded_draw_uses_the_documented_distribution_and_each_rows_own_seed():
    """SeededDraw applies transformers' warpers in generate's order (the distribution the reference computes) and
    draws row r from its own generator: the same seed gives the same token whatever the rest of the batch."""
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    for t, k, p, mp in [(1.5, 20, 0.8, 0.0), (0.6, 0, 0.95, 0.0), (1.5, 20, 0.8, 0.2)]:
        draw = SeededDraw([1, 2, 3], dec(t, k, p, mp))
        got = draw.distribution(torch.zeros(3, 1, dtype=torch.long), logits.clone())
        torch.testing.assert_close(got, reference_distribution(logits, t, k, p, mp), atol=1e-6, rtol=1e-5)
    # frequencies: 4000 rows with different seeds, one distribution
    probs = reference_distribution(logits[:1], 1.5, 20, 0.8, 0.0)[0]
    rows = logits[:1].repeat(4000, 1)
    out = SeededDraw(list(range(4000)), dec(1.5, 20, 0.8, 0.0))(torch.zeros(4000, 1, dtype=torch.long), rows)
    tokens = out.argmax(-1)
    assert torch.all(out.max(-1).values == 0) and torch.isinf(out).sum() == 4000 * 49  # one-hot for generate
    counts = torch.bincount(tokens, minlength=50).double()
    assert torch.all(counts[probs == 0] == 0)  # never outside the support
    sigma = (4000 * probs * (1 - probs)).sqrt()
    assert torch.all((counts - 4000 * probs).abs() <= 4 * sigma + 1)
    # a row's draw depends on its seed only
    alone = SeededDraw([7], dec(1.5, 20, 0.8, 0.0))(torch.zeros(1, 1, dtype=torch.long), logits[:1].clone())
    mixed = SeededDraw([3, 7, 9], dec(1.5, 20, 0.8, 0.0))(torch.zeros(3, 1, dtype=torch.long), logits[:1].repeat(3, 1))
    assert alone.argmax(-1).item() == mixed[1].argmax(-1).item()


def test_samples_do_not_depend_on_batch_or_shard(tmp_path, tiny_model, problems_file):
    """Each sample's seed is (global seed, prompt id, sample index): other batch and shard sizes (so other
    batch neighbours, order and padding) give the same samples; another global seed gives other ones."""
    def records(d):
        return {(r["prompt_id"], r["sample_index"]): (r["output"], r["seed"])
                for s in sorted(d.glob("shard-*.jsonl")) for r in read_jsonl(s)}

    sample(_cfg(tiny_model, problems_file, batch_size=1, shard_size=12), tmp_path / "a", progress=False)
    sample(_cfg(tiny_model, problems_file, batch_size=5, shard_size=7), tmp_path / "b", progress=False)
    sample(_cfg(tiny_model, problems_file, batch_size=5, shard_size=7, seed=3), tmp_path / "c", progress=False)
    a, b, c = records(tmp_path / "a"), records(tmp_path / "b"), records(tmp_path / "c")
    assert len(a) == 24 and a == b
    assert sum(a[k][0] != c[k][0] for k in a) >= 20


def test_flags_loops_code_and_reasoning():
    assert looping([5, 6, 7] * 20) and looping([1] * 40)
    assert not looping([1] * 31)  # too short a run to call a loop
    assert not looping(list(range(200)))
    assert looping([9, 8] + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 4)  # a 10-token unit 4 times
    assert not looping([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3)  # 3 times is not enough
    f = sample_flags("<think>\nhmm\n</think>\n```python\nprint(1)\n```", "stop", [1, 2, 3])
    assert f == {"truncated": False, "looping": False, "has_code": True, "has_think": True, "reasoning_unclosed": False}
    f = sample_flags("x = 1\n" * 40, "length")  # text only: the characters are checked
    assert f == {"truncated": True, "looping": True, "has_code": False, "has_think": False, "reasoning_unclosed": False}
    # a Thinking model's sample starts inside the reasoning its generation prompt opened: the code that counts is
    # the answer's, after </think>; one cut off before </think> is unclosed and has no answer
    done = "try ```python\nprint(0)\n``` maybe\n</think>\n\n```python\nprint(1)\n```"
    assert sample_flags(done, "stop", thinking=True) == {"truncated": False, "looping": False, "has_code": True,
                                                         "has_think": True, "reasoning_unclosed": False}
    cut = "let me try\n```python\nprint(0)\n```\nand then"
    assert sample_flags(cut, "length", thinking=True)["has_code"] is False
    assert sample_flags(cut, "length", thinking=True)["reasoning_unclosed"] is True
    assert sample_flags(cut, "length")["has_code"] is True  # an Instruct model's sample is its answer whole
    assert sample_flags("<think>\nstill thinking", "length")["reasoning_unclosed"] is True  # it opened one itself


CONTROL = (1.5, 20, 0.8)  # the paper's T_train truncation, mirrored by the control


def control_formula(logits, t_eval, top_k, top_p, control=CONTROL):
    """The control written out directly: softmax(logits / (T_train * T_eval)) on the T_train support, then the
    evaluation's top-k / top-p (reference_distribution's order) on what is left."""
    t_train, k_train, p_train = control
    support = reference_distribution(logits, t_train, k_train, p_train, 0.0) > 0
    masked = torch.where(support, logits.double() / t_train, float("-inf"))
    return reference_distribution(masked, t_eval, top_k, top_p, 0.0)


def control_dec(t_eval, top_k, top_p, max_new_tokens=1, n=1, control=CONTROL):
    return Decoding(t_eval, top_k, top_p, 0.0, n, max_new_tokens, 0, "ssd_equivalent", *control)


@pytest.mark.parametrize("t_eval, top_k, top_p", [(0.6, 20, 0.95), (1.0, 0, 1.0), (1.2, 5, 0.9)])
def test_control_draws_from_the_formula_at_every_position_of_real_samples(model_and_tokenizer, t_eval, top_k, top_p):
    """decoding ssd_equivalent: at every position of samples generate_batch drew, the distribution drawn from is
    base logits / (T_train * T_eval) on the T_train support, then eval's truncation (total variation ~ 0), every
    drawn token is in it, and it is not simply the plain T_eval distribution."""
    model, tok = model_and_tokenizer
    stops = stop_token_ids(model, tok)
    prompts = encode(tok, ["<|im_start|>user\nwrite code<|im_end|>\n<|im_start|>assistant\n",
                           "<|im_start|>user\nsort a list of numbers<|im_end|>\n<|im_start|>assistant\n"])
    d = control_dec(t_eval, top_k, top_p, max_new_tokens=16, n=3)
    seeds = list(range(6))
    saved = model.lm_head.weight.detach().clone()
    with torch.no_grad():
        model.lm_head.weight.div_(40.0)  # the random model itself, unsharpened: broad distributions, real tails to cut
    try:
        res = generate_batch(model, tok, prompts, d, stops, seeds)
        forced = []
        for r in res:
            ids = torch.tensor([r["prompt_token_ids"] + r["completion_token_ids"]])
            with torch.no_grad():
                forced.append((ids, model(ids).logits[0, len(r["prompt_token_ids"]) - 1: -1].double()))
    finally:
        with torch.no_grad():
            model.lm_head.weight.copy_(saved)
    positions, worst_tv, differs = 0, 0.0, 0
    for row, (r, (ids, logits)) in enumerate(zip(res, forced)):
        drawn_from = SeededDraw([seeds[row]], d).distribution(ids, logits.float())
        formula = control_formula(logits, t_eval, top_k, top_p)
        plain = reference_distribution(logits, t_eval, top_k, top_p, 0.0)
        for i, token in enumerate(r["completion_token_ids"]):
            assert formula[i, token] > 0, "drew a token outside the control's support"
            worst_tv = max(worst_tv, 0.5 * (drawn_from[i] - formula[i]).abs().sum().item())
            differs += 0.5 * (plain[i] - formula[i]).abs().sum().item() > 0.05
            positions += 1
    assert positions >= 40
    assert worst_tv < 1e-5
    assert differs >= positions // 4  # the control is another distribution than plain decoding at this T_eval


def test_control_greedy_is_plain_greedy(model_and_tokenizer):
    """Greedy under the control (its processor in generate, no sampling) picks the same tokens as plain greedy;
    and a config's greedy T_eval under the control is plain greedy (one sample), so the base's greedy stands for it."""
    model, tok = model_and_tokenizer
    stops = stop_token_ids(model, tok)
    prompts = encode(tok, ["<|im_start|>user\nwrite code<|im_end|>\n<|im_start|>assistant\n",
                           "<|im_start|>user\nadd two numbers<|im_end|>\n<|im_start|>assistant\n",
                           "def f(x):\n    return"])
    plain = generate_batch(model, tok, prompts, dec(0.0, 20, 0.95, 0.0, 24, 1), stops, seeds=[])
    for control in (CONTROL, (2.0, 0, 1.0), (0.7, 3, 0.5)):
        under = generate_batch(model, tok, prompts, control_dec(0.0, 20, 0.95, 24, 1, control), stops, seeds=[])
        assert [r["completion_token_ids"] for r in under] == [r["completion_token_ids"] for r in plain]
    assert sum(len(r["completion_token_ids"]) for r in plain) >= 30
    cfg = SSDConfig()
    cfg.eval.decoding = "ssd_equivalent"
    assert cfg.eval.to_decoding(0.6, cfg.sample).control == (1.5, 20, 0.8)  # null: mirrors sample.*
    assert cfg.eval.to_decoding(0.0, cfg.sample).control is None and cfg.eval.to_decoding(0.0, cfg.sample).n == 1
    cfg.eval.control_temperature, cfg.sample.top_p = 2.0, 1.0
    assert cfg.eval.to_decoding(0.6, cfg.sample).control == (2.0, 20, 1.0)
