"""The testbed's artefacts: the shipped base model and its build manifest, the task splits it was built with, and
the file operations the build and the demo share (`build` writes them, `demo` checks and uses them)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from ..io import InputError, atomic_path, atomic_write_jsonl, read_json

SETTINGS = Path(str(resources.files("simplesd.testbed")))  # the demo's and the build's YAML files live here


def split_records(seed: int, sizes: dict) -> dict[str, list[dict]]:
    from .tasks import make_splits

    return {name: [rec for _, rec in items] for name, items in make_splits(seed, sizes).items()}


def records_hash(records: list[dict]) -> str:
    h = hashlib.sha256()
    for rec in records:
        h.update(json.dumps(rec, sort_keys=True).encode())
    return h.hexdigest()


def file_hashes(model_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir())
            if p.is_file() and p.name != "build_manifest.json"}


def shipped_base() -> Path:
    return SETTINGS / "base"


BASES_YAML = SETTINGS / "bases.yaml"


def shipped_bases() -> tuple[str, dict[str, dict]]:
    """(the default base's name, {name: {"dir": Path, "why": str}}) from bases.yaml, weakest first as listed."""
    from ..config import read_yaml

    data = read_yaml(BASES_YAML)
    return data["default"], {name: {"dir": SETTINGS / b["dir"], "why": b["why"]} for name, b in data["bases"].items()}


def resolve_base(base: str | Path | None) -> tuple[str, Path, str]:
    """`ssd demo --base`: a shipped base's name (or none: the default) or a directory built by `ssd testbed build`.
    Returns (name, directory, why it is that base)."""
    default, bases = shipped_bases()
    if base is None or str(base) in bases:
        name = default if base is None else str(base)
        return name, bases[name]["dir"], bases[name]["why"]
    path = Path(base)
    if not path.is_dir():
        raise InputError(f"--base {base}: neither a shipped base ({', '.join(bases)}) nor a directory")
    return path.name, path, "given with --base"


def read_build_manifest(model_dir: str | Path) -> dict:
    p = Path(model_dir) / "build_manifest.json"
    if not p.is_file():
        raise InputError(f"{p}: no build manifest; build the base with `ssd testbed build`")
    return read_json(p)


def verify_base(model_dir: str | Path) -> dict:
    """The build manifest, after checking every model file against its recorded sha256."""
    manifest = read_build_manifest(model_dir)
    actual = file_hashes(Path(model_dir))
    for name, digest in manifest["model_files"].items():
        if actual.get(name) != digest:
            raise InputError(f"{Path(model_dir) / name}: checksum differs from build_manifest.json "
                             "(the shipped model is damaged; reinstall simplesd or rebuild with `ssd testbed build`)")
    return manifest


def write_splits(manifest: dict, out_dir: Path, names=("ssd", "dev", "test")) -> dict[str, Path]:
    """Re-creates the evaluation and SSD splits the base was built with, checked against the manifest hashes.
    (They are drawn before the pretraining split, so they do not depend on its size.)"""
    sizes = {k: v for k, v in manifest["split_sizes"].items() if k != "pretrain"}
    splits = split_records(manifest["seed"], sizes)
    paths = {}
    for name in names:
        if records_hash(splits[name]) != manifest["split_hashes"][name]:
            raise InputError(f"testbed split '{name}' differs from the one the base was built with "
                             "(task family code changed since the build; rebuild with `ssd testbed build`)")
        paths[name] = out_dir / f"{name}.jsonl"
        atomic_write_jsonl(paths[name], splits[name])
    return paths


def export_fp16(src: Path, dst: Path) -> None:
    """Saves the model as float16 safetensors (half the bytes; loaded back as float32 on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with atomic_path(dst) as tmp:
        model.to(torch.float16).save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        (tmp / "param_count.json").write_text(json.dumps({"total": sum(p.numel() for p in model.parameters())}))


def install(built: str | Path) -> Path:
    """Replaces the package's shipped base by a build's model (what a maintainer commits)."""
    import shutil

    dest = shipped_base()
    with atomic_path(dest) as tmp:
        shutil.copytree(Path(built) / "model", tmp)
        for f in tmp.iterdir():
            f.chmod(0o644)  # atomic writes create 0600 files; package data is world-readable
    return dest
