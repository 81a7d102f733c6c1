"""GPU smoke test: the transformers sampling backend and a short accelerate FSDP / LoRA training run on CUDA.

    python benchmarks/gpu_smoke.py              # on a machine with a CUDA GPU (no hub needed)
    python benchmarks/gpu_smoke.py --cpu        # the same steps on a CPU (checks the script; no FSDP there)

Samples 64 testbed problems with the shipped testbed model (`ssd sample`, transformers backend, cuda), then
trains it for a few steps three ways (plain, LoRA, and under `accelerate launch --config_file
configs/accelerate/fsdp.yaml` with one process), and prints a table of tokens/s and peak GPU memory from the
stages' manifests. Every step is a real `ssd` command in a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str]) -> float:
    t0 = time.time()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return time.time() - t0


def main() -> None:
    import torch

    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    cpu = "--cpu" in sys.argv
    if not cpu and not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA device (--cpu runs the steps on a CPU)")
    device = "cpu" if cpu else "cuda"
    work = Path(tempfile.mkdtemp(prefix="ssd-gpu-smoke-"))
    base = shipped_base()
    data = write_splits(read_build_manifest(base), work, names=("ssd",))
    prompts = work / "p64.jsonl"
    prompts.write_text("".join(open(data["ssd"]).readlines()[:64]))
    ssd = [sys.executable, "-m", "simplesd.cli"]
    rows = []

    secs = run(ssd + ["sample", "--model", base, "--prompts", prompts, "--out", work / "sample", "--no-progress",
                      f"sample.device={device}", "sample.batch_size=32", "sample.max_new_tokens=256", "sample.n=2"])
    m = json.loads((work / "sample" / "manifest.json").read_text())
    rows.append((f"sample (transformers, {device})", m["generate_tokens_per_s_this_run"], m["peak_gpu_memory_gb"], secs))
    run(ssd + ["filter", "--samples", work / "sample", "--out", work / "filter", "filter.holdout_fraction=0"])

    train = ["--model", base, "--data", work / "filter" / "train.jsonl", "--no-progress", "train.max_steps=8",
             "train.learning_rate=3e-4", "train.effective_batch_size=8", "train.per_device_batch_size=8",
             "train.max_seq_length=1024", "train.save_steps=1000"]
    for name, prefix, extra in [
        ("train (full, bf16 compute)", ssd, []),
        ("train (LoRA)", ssd, ["train.lora.enabled=true"]),
        ("train (FSDP2, accelerate, 1 GPU)", [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                                             ROOT / "configs" / "accelerate" / "fsdp.yaml", "--num_processes", "1",
                                             "-m", "simplesd.cli"], []),
        ("train (FSDP2 + LoRA)", [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                                 ROOT / "configs" / "accelerate" / "fsdp.yaml", "--num_processes", "1",
                                 "-m", "simplesd.cli"], ["train.lora.enabled=true"]),
    ]:
        out = work / f"train-{len(rows)}"
        secs = run(prefix + ["train", *train, *extra, "--out", out])
        m = json.loads((out / "manifest.json").read_text())
        rows.append((f"{name} [{m['distributed']}]", m["counts"]["mean_tokens_per_second"], m["peak_gpu_memory_gb"], secs))

    print(f"\n{'CPU' if cpu else torch.cuda.get_device_name()} · torch {torch.__version__}\n")
    print(f"| {'step':<42} | {'tokens/s':>10} | {'peak GPU GiB':>12} | {'wall s':>7} |")
    print(f"|{'-' * 44}|{'-' * 11}:|{'-' * 13}:|{'-' * 8}:|")
    for name, tps, mem, secs in rows:
        print(f"| {name:<42} | {tps or 0:>10,.0f} | {mem or 0:>12.2f} | {secs:>7.1f} |")
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
