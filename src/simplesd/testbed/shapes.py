"""Tiny random-weight models in a real model's architecture, with its real tokenizer, chat template and
generation config: what the pipeline meets on the paper's models (Qwen3, Qwen3-MoE, Llama 3.1), without weights.

`scaled_copy(source, out)` reads a model directory's (or hub id's) config.json, keeps everything that decides how
the model reads and writes text (architecture, vocabulary, special tokens, rope settings, tied embeddings, the
mixture-of-experts routing) and scales the size down (2 layers, hidden 64, one 64-wide attention head: vLLM's CPU
kernels need head_dim 64; 8 experts, 2 per token), then saves the random model beside verbatim copies of the
tokenizer files, the chat template and generation_config.json. `ssd testbed scaled --like DIR --out DIR` runs it.

`stop_probability`: the weights are random, so a sample almost never draws one of the model's stop ids among
150K tokens; with it, the stop ids' logits are raised at every position so that, drawn at temperature 1 without
truncation, each step ends the sample with about that probability, spread evenly over the stop ids: some samples
end by themselves, on each stop id, others run to max_new_tokens (what tests of stopping and of end-of-turn
training need).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# the files that carry the tokenizer, the chat template and the stopping rules, copied as they are
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "chat_template.jinja", "chat_template.json", "generation_config.json",
                   "LICENSE", "USE_POLICY.md")
SCALED = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 1,
          "num_key_value_heads": 1, "head_dim": 64}
SCALED_MOE = {"num_local_experts": 8, "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32}


def scaled_config(source: str, layers: int = 2, hidden: int = 64):
    """The source's config with the sizes scaled down and everything else kept."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(source)
    sizes = {**SCALED, "num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": 2 * hidden}
    for key, value in sizes.items():
        setattr(cfg, key, value)
    if any(hasattr(cfg, k) for k in ("num_local_experts", "num_experts")):
        for key, value in SCALED_MOE.items():
            if hasattr(cfg, key):
                setattr(cfg, key, value)
    for key in ("max_window_layers",):
        if hasattr(cfg, key):
            setattr(cfg, key, layers)
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = cfg.layer_types[:layers]
    cfg.dtype = "float32"
    return cfg


def scaled_copy(source: str | Path, out: str | Path, *, layers: int = 2, hidden: int = 64, seed: int = 0,
                stop_probability: float | None = None) -> Path:
    """Writes a tiny random model in `source`'s architecture with its tokenizer files into `out`; returns `out`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    source, out = str(source), Path(out)
    cfg = scaled_config(source, layers, hidden)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    if stop_probability is not None:
        gen = GenerationConfig.from_pretrained(source)
        stops = [gen.eos_token_id] if isinstance(gen.eos_token_id, int) else list(gen.eos_token_id or [])
        _raise_stop_logits(model, stops, stop_probability)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _copy_text_files(source, out)
    return out


def full_size_copy(source: str | Path, out: str | Path, *, device: str = "cpu", seed: int = 0) -> Path:
    """Writes a random-weight model at `source`'s real size (its config as it is, bf16 weights, initialised on
    `device`: a 4B model takes seconds on a GPU) with its tokenizer files into `out`; returns `out`. What a GPU
    benchmark needs to measure speed and memory of the real shape without its weights (benchmarks/gpu_smoke.py)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    source, out = str(source), Path(out)
    cfg = AutoConfig.from_pretrained(source)
    cfg.dtype = "bfloat16"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _copy_text_files(source, out)
    return out


def _copy_text_files(source: str, out: Path) -> None:
    """The tokenizer files, the chat template and the generation config, as the source has them."""
    from transformers import GenerationConfig

    src = Path(source)
    if src.is_dir():
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
    else:  # a hub id: the tokenizer and generation config as the hub serves them
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(source).save_pretrained(out)
        try:
            GenerationConfig.from_pretrained(source).save_pretrained(out)
        except OSError:
            pass


def _raise_stop_logits(model, stops: list[int], probability: float) -> None:
    """Makes one hidden direction dominate every position (a constant in embedding dimension 0, where random weights
    are ~0.02), so the last hidden state points along it wherever the text goes: every token's logit is then about
    the same, and the stop ids' rows get `logit` more along that direction, where `logit` makes them take
    `probability` of the mass at T = 1 among the vocabulary's near-equal others."""
    import math

    import torch

    with torch.no_grad():
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        vocab, d = head.shape
        logit = math.log(probability / (1 - probability) * (vocab - len(stops)) / len(stops))
        emb[:, 0] = 1.0
        head[:, 0] = 1.0  # (the same tensor when the embeddings are tied: then this is a no-op)
        head[stops, 0] = 1.0 + logit / d**0.5  # the normalised hidden state is ~sqrt(d) along dimension 0
