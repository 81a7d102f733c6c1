"""Loading a causal LM and its tokenizer from a hub id or a local directory (heavy imports live here)."""

from __future__ import annotations

from pathlib import Path

from .config import ModelConfig
from .io import InputError


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"config key 'sample.device': {device} requested but no CUDA device is available")
    return device


def resolve_dtype(name: str, device: str):
    import torch

    if name == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    if not cfg.name_or_path:
        raise InputError("no model given (set model.name_or_path or pass --model)")
    try:
        tok = AutoTokenizer.from_pretrained(cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:
        raise InputError(f"{cfg.name_or_path}: cannot load tokenizer ({str(e).splitlines()[0]})") from None
    if cfg.chat_template:
        p = Path(cfg.chat_template)
        if not p.is_file():
            raise InputError(f"{p}: chat template file not found (model.chat_template)")
        tok.chat_template = p.read_text(encoding="utf-8")
    if not tok.chat_template:
        raise InputError(f"{cfg.name_or_path}: the tokenizer has no chat template; set model.chat_template to a Jinja file")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, device: str):
    from transformers import AutoModelForCausalLM

    dtype = resolve_dtype(cfg.dtype, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, dtype=dtype,
            **({"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}),
        )
    except OSError as e:
        raise InputError(f"{cfg.name_or_path}: cannot load model ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


def stop_token_ids(model_or_generation_config, tokenizer) -> list[int]:
    """Every token that ends a turn: the generation config's eos ids (chat models list their end-of-turn
    token there) plus the tokenizer's eos."""
    gen = getattr(model_or_generation_config, "generation_config", model_or_generation_config)
    ids = gen.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def peak_gpu_memory_gb() -> float | None:
    """Peak memory torch allocated on the current GPU in this process (GiB), for the manifests."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
