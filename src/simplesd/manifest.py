"""Stage manifests: what ran, on what, with what, and how long it took.

Every stage writes `manifest.json` last (atomically), so its presence with `"complete": true` means the
stage's outputs are whole. A stage is skipped on rerun when that manifest's fingerprint (a hash of the
stage's config and its inputs' content) matches and every output it lists still exists.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .io import read_json, sha256_json, write_json

MANIFEST = "manifest.json"
_PACKAGES = ("simplesd", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "vllm")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the simplesd checkout this code runs from, if it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Python's and the packages' versions, for results people compare (evaluation summaries)."""
    return {"python": sys.version.split()[0], **package_versions()}


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "argv": sys.argv,
    }


def fingerprint(stage: str, config: Any, inputs: dict[str, str]) -> str:
    return sha256_json({"stage": stage, "config": config, "inputs": inputs})


def load_manifest(out_dir: str | Path) -> dict | None:
    p = Path(out_dir) / MANIFEST
    if not p.is_file():
        return None
    try:
        return read_json(p)
    except Exception:
        return None


def stage_is_done(out_dir: str | Path, fp: str) -> bool:
    m = load_manifest(out_dir)
    if not m or not m.get("complete") or m.get("fingerprint") != fp:
        return False
    return all((Path(out_dir) / o).exists() for o in m.get("outputs", []))


def write_manifest(
    out_dir: str | Path,
    *,
    stage: str,
    fp: str,
    config: Any,
    inputs: dict[str, str],
    outputs: list[str],
    counts: dict[str, Any],
    timings: dict[str, float],
    seeds: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict:
    manifest = {
        "stage": stage,
        "complete": True,
        "fingerprint": fp,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "inputs": inputs,
        "outputs": outputs,
        "counts": counts,
        "seeds": seeds or {},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "environment": environment(),
        **(extra or {}),
    }
    write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest
