"""Loading a causal LM and its tokenizer from a hub id or a local directory (heavy imports live here)."""

from __future__ import annotations

import json
import re
import struct
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


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
           "adapter_model.safetensors", "adapter_model.bin")


def model_location(name_or_path: str) -> Path | None:
    """The local directory `name_or_path` names, or None for a hub id. A value that can only be a path (absolute,
    ./, ../, ~, more than one '/', a file suffix) and does not exist is an InputError saying so, not a hub error."""
    if not name_or_path:
        raise InputError("no model given (set model.name_or_path or pass --model)")
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{p}: a model is a directory (config.json, tokenizer and weights), not a file")
        return p
    if not _HUB_ID.fullmatch(name_or_path):
        raise InputError(f"{name_or_path}: model directory not found (and it is not a hub id: those are NAME or ORG/NAME)")
    return None


def _safetensors_intact(path: Path) -> None:
    """A safetensors file's header says where every tensor's bytes lie: the file must hold all of them."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        try:
            header = json.loads(f.read(n)) if 0 < n <= size - 8 else None
        except ValueError:
            header = None
    if header is None:
        raise InputError(f"{path}: not a safetensors file, or its header is damaged; download or save the model again")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise InputError(f"{path}: truncated ({size:,} bytes; its header needs {8 + n + end:,}); download or save the "
                         "model again")


def check_model_files(cfg: ModelConfig) -> None:
    """For a local model directory: config.json and weights are there and whole (safetensors files hold every byte
    their headers promise; an index's shards all exist). Seconds, where loading a broken model fails late and with
    a library's traceback. Hub ids are left to the hub."""
    d = model_location(cfg.name_or_path)
    if d is None:
        return
    adapter = (d / "adapter_config.json").is_file()
    if not adapter and not (d / "config.json").is_file():
        raise InputError(f"{d}: no config.json: not a transformers model directory")
    weights = [d / w for w in WEIGHTS if (d / w).is_file()] or sorted(d.glob("*.safetensors"))
    if not weights:
        raise InputError(f"{d}: no weights (model.safetensors, its index, or pytorch_model.bin); the directory holds "
                         f"only {', '.join(sorted(p.name for p in d.iterdir())[:6]) or 'nothing'}")
    files = []
    for w in weights:
        if w.name.endswith(".index.json"):
            from .io import read_json

            shards = sorted(set(read_json(w).get("weight_map", {}).values()))
            missing = [s for s in shards if not (d / s).is_file()]
            if missing:
                raise InputError(f"{w}: lists {len(shards)} weight shards, {len(missing)} missing ({missing[0]}, ...)")
            files += [d / s for s in shards]
        else:
            files.append(w)
    for f in files:
        if f.suffix == ".safetensors":
            _safetensors_intact(f)


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    where = model_location(cfg.name_or_path) or cfg.name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        hub = "" if isinstance(where, Path) else " from the hub"
        raise InputError(f"{where}: cannot load the tokenizer{hub} ({str(e).splitlines()[0]})") from None
    if cfg.chat_template:
        from .io import read_text

        tok.chat_template = read_text(cfg.chat_template, "chat template file (model.chat_template)")
    if not tok.chat_template:
        raise InputError(f"{cfg.name_or_path}: the tokenizer has no chat template; set model.chat_template to a Jinja file")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, device: str):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    check_model_files(cfg)
    dtype = resolve_dtype(cfg.dtype, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, dtype=dtype,
            **({"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}),
        )
    except (OSError, ValueError, SafetensorError) as e:
        raise InputError(f"{cfg.name_or_path}: cannot load the model ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


def vocab_size(cfg: ModelConfig) -> int:
    """The model's vocabulary (its embedding rows: Qwen3's 151,936 is more than its tokenizer's 151,669 tokens)."""
    from transformers import AutoConfig

    try:
        c = AutoConfig.from_pretrained(cfg.name_or_path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise InputError(f"{cfg.name_or_path}: cannot load the model's config ({str(e).splitlines()[0]})") from None
    return c.get_text_config().vocab_size


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
