import json

import pytest
from conftest import ssd

from simplesd.config import SSDConfig
from simplesd.estimate import KNOWN, estimate, shape_of


@pytest.mark.parametrize("name, total, active", [
    ("Qwen/Qwen3-4B-Instruct-2507", 4.02e9, 4.02e9),     # model card: 4.0 B
    ("meta-llama/Llama-3.1-8B-Instruct", 8.03e9, 8.03e9),  # 8.03 B
    ("Qwen/Qwen3-30B-A3B-Instruct-2507", 30.53e9, 3.35e9),  # 30.5 B total, 3.3 B activated
])
def test_parameter_counts_match_the_published_ones(name, total, active):
    sh = KNOWN[name]
    assert sh.params() == pytest.approx(total, rel=0.005)
    assert sh.params(active=True) == pytest.approx(active, rel=0.01)


def test_shape_read_from_a_config_counts_the_real_model_exactly(tiny_model):
    """For a model not in the table, the shape comes from its config.json; the count equals the weights'."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    real = sum(p.numel() for p in model.parameters())
    sh = shape_of(str(tiny_model))
    assert sh.params() == real and not sh.qk_norm  # Llama: no q/k norms (tests/test_real_models.py: Qwen3's)
    assert sh.kv_bytes_per_token() == 2 * sh.layers * sh.kv_heads * sh.head_dim * 2


def test_memory_follows_the_documented_formula():
    cfg = SSDConfig()
    cfg.model.name_or_path = "Qwen/Qwen3-4B-Instruct-2507"
    cfg.train.max_seq_length = 16384
    sh = KNOWN[cfg.model.name_or_path]
    full = estimate(cfg, 10000, 4000, gpus=8)
    tr = full["training"]
    assert tr["parts_gb"]["weights_grads_optimizer"] == pytest.approx(16 * sh.params() / 8 / 1e9, abs=0.05)
    assert tr["parts_gb"]["logits"] == pytest.approx(10 * 16384 * sh.vocab / 1e9, abs=0.05)
    assert tr["parts_gb"]["activations"] == pytest.approx(sh.layers * 34 * 16384 * sh.hidden / 1e9, abs=0.05)
    cfg.train.gradient_checkpointing = cfg.train.use_liger_kernel = True
    lean = estimate(cfg, 10000, 4000, gpus=8)["training"]
    assert lean["parts_gb"]["logits"] == 0 and lean["memory_gb_per_gpu"] < tr["memory_gb_per_gpu"]
    assert lean["hours"] == pytest.approx(tr["hours"] * 4 / 3, rel=0.01)  # one more forward pass
    cfg.train.lora.enabled = cfg.train.lora.load_in_4bit = True
    q = estimate(cfg, 10000, 4000, gpus=8)["training"]
    assert q["parts_gb"]["weights_grads_optimizer"] == pytest.approx(0.56 * sh.params() / 1e9, abs=0.05)
    # more samples, more time, linearly; a bigger GPU count, less
    assert estimate(cfg, 20000, 4000, gpus=8)["sampling"]["hours"] == pytest.approx(2 * full["sampling"]["hours"], rel=0.01)
    assert estimate(cfg, 10000, 4000, gpus=16)["sampling"]["hours"] < full["sampling"]["hours"]


def test_ssd_estimate_prints_and_refuses_what_does_not_fit(tmp_path):
    r = ssd("estimate", "--model", "Qwen/Qwen3-30B-A3B-Instruct-2507", "--prompts-count", "10000",
            "--mean-sample-tokens", "8000", "--json", "train.max_seq_length=65536", check=True)
    e = json.loads(r.stdout)
    assert e["parameters_b"] == 30.53 and e["active_parameters_b"] == 3.35 and e["generated_tokens_m"] == 80.0
    assert e["training"]["fits"] is False  # full fine-tuning at 64K on 8 x 80 GB without checkpointing
    r = ssd("estimate", "--model", "Qwen/Qwen3-30B-A3B-Instruct-2507")
    assert r.returncode == 2 and "--prompts-count" in r.stderr


@pytest.mark.slow
def test_gpu_smoke_shape_mode_runs_every_step_on_the_scaled_shape_beside_the_estimate(tmp_path):
    """`benchmarks/gpu_smoke.py --shape DIR --cpu`: what a lent GPU runs at the real size (build, sample at the
    paper's decoding, one token-exact FSDP training run), on Qwen3-4B-Instruct-2507's scaled shape, with the
    estimate beside each measurement."""
    import subprocess
    import sys

    from conftest import MODELS, ROOT

    out = tmp_path / "rows.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--cpu", "--shape",
                        str(MODELS / "Qwen3-4B-Instruct-2507"), "--prompts", "16", "--new-tokens", "48", "--steps", "2",
                        "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(out.read_text())
    rows = {row["step"].split(" (")[0].split(":")[0]: row for row in got["rows"]}
    assert got["mean_sample_tokens"] == pytest.approx(48, abs=1)  # random weights: every sample runs to the cap
    sample = next(row for row in got["rows"] if row["step"].startswith("sample (transformers"))
    assert sample["tokens_per_s"] > 0 and sample["estimate_tokens_per_s"] is None
    vllm = next(row for row in got["rows"] if row["step"].startswith("sample (vllm"))
    assert vllm["estimate_tokens_per_s"] > 0  # measured where vLLM is installed, else said so beside the estimate
    train = rows["train"]
    assert train["tokens_per_s"] > 0 and train["estimate_tokens_per_s"] > 0 and 0 < train["mfu"] < 1
    assert train["token_exact_rows"] > 0 and train["rows_rendered_differently"] == 0
    # accelerate runs the FSDP config as one plain process on a CPU (the manifest says so); no GPU memory there
    assert ", NO," in train["step"] and "| MFU |" in r.stdout and "not measured" in r.stdout
    print(r.stdout)
