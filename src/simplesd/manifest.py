"""Stage manifests: what ran, on what, with what, and how long it took; and whose a directory is.

Every stage writes `manifest.json` last (atomically), so its presence with `"complete": true` means the
stage's outputs are whole. A stage is skipped on rerun when that manifest's fingerprint (a hash of the
stage's config and its inputs' content) matches and every output it lists still exists.

Before it writes anything, a stage claims its output directory (`claim_output_dir`): `stage.json` records the
stage, its config and its inputs. A rerun with the same ones resumes. A directory holding work of another config
or other inputs is refused, with the differences key by key, unless `overwrite` (`--overwrite`) says to delete
that work and start over; nothing is ever deleted otherwise.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import logging
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .io import InputError, output_dir, read_json, remove_path, sha256_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STAGE_FILE = "stage.json"
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


# ---------------------------------------------------------------------------------------------------------
# Whose directory this is


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:16] + "…" + text[-16:]


def differences(old: dict, new: dict, limit: int = 8, prefix: str = "") -> str:
    """'key: old -> new' for every config key and input that differs, in one line (`prefix`: the config section
    the keys are in, when the stage records only that section)."""
    a, b = (_flatten(d.get("config", {}), prefix) for d in (old, new))
    ia, ib = old.get("inputs", {}), new.get("inputs", {})
    rows = [f"{k}: {_short(a.get(k, '(unset)'))} -> {_short(b.get(k, '(unset)'))}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    rows += [f"input '{k}' changed ({_short(ia.get(k, '(none)'))} -> {_short(ib.get(k, '(none)'))})"
             for k in sorted(set(ia) | set(ib)) if ia.get(k) != ib.get(k)]
    if not rows:
        return "settings not recorded (written by an older simplesd)" if "config" not in old else "the same settings"
    return "; ".join(rows[:limit]) + (f"; and {len(rows) - limit} more" if len(rows) > limit else "")


def _recorded(out_dir: Path) -> dict | None:
    """What the directory says it holds: its stage.json, else a finished manifest, else a legacy state file."""
    for name in (STAGE_FILE, MANIFEST, "plan.json", "train_state.json"):
        p = out_dir / name
        if p.is_file():
            try:
                rec = read_json(p)
            except InputError:
                continue
            if isinstance(rec, dict) and rec.get("fingerprint"):
                return rec
    return None


def _matches(out_dir: Path, patterns: tuple[str, ...]) -> list[Path]:
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if any(fnmatch.fnmatch(p.name, pat) for pat in patterns))


def claim_output_dir(out_dir: str | Path, stage: str, config: Any, inputs: dict, *, work: tuple[str, ...],
                     bookkeeping: tuple[str, ...] = (), overwrite: bool = False, write: bool = True,
                     section: str = "", adopt: bool = False) -> str:
    """Makes `out_dir` this stage's for this config and these inputs, and returns the fingerprint.

    `work` are the names (glob patterns) of what the stage produces; `bookkeeping` the files it keeps about that
    work. The same stage, config and inputs: resume. Anything else that holds work is refused with the
    differences (an InputError), unless `overwrite`: then the work and bookkeeping are deleted and the stage starts
    over. Bookkeeping without work (a stage stopped before producing anything) is replaced quietly. Another
    stage's directory is always refused. `write=False` only checks. `section`: the config section `config` is,
    when it is one (named in the differences). `adopt`: a directory without any record is this config's (its
    caller recognised work simplesd wrote before it kept records)."""
    prefix = f"{section}." if section else ""
    out_dir = output_dir(out_dir)
    fp = fingerprint(stage, config, inputs)
    new = {"stage": stage, "fingerprint": fp, "config": config, "inputs": inputs}
    rec = _recorded(out_dir)
    if rec is not None and rec.get("stage", stage) != stage:
        raise InputError(f"{out_dir}: holds the output of `ssd {rec['stage']}`, not of `ssd {stage}`; "
                         "choose another output directory")
    found = _matches(out_dir, work)
    if rec is None and adopt:
        rec = new
    if rec is None or rec["fingerprint"] != fp:
        if found and not overwrite:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found[:4]) + (", ..." if len(found) > 4 else "")
            why = (f"holds {stage} output of another config or other inputs ({differences(rec, new, prefix=prefix)})" if rec else
                   f"already holds {names}, which `ssd {stage}` would replace, and no record of what made them")
            raise InputError(f"{out_dir}: {why}; rerun with --overwrite to delete it and start over, or choose "
                             "another output directory")
        if found:
            log.warning("%s: --overwrite: deleting %d outputs of another config or other inputs (%s)", out_dir,
                        len(found), differences(rec, new, prefix=prefix) if rec else "no record of what made them")
        if write:
            for p in found + _matches(out_dir, (*bookkeeping, STAGE_FILE, MANIFEST, "train_state.json")):
                remove_path(p)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        if rec is None or rec["fingerprint"] != fp or not (out_dir / STAGE_FILE).is_file():
            write_json(out_dir / STAGE_FILE, {**new, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return fp
