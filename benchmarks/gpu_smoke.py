"""GPU smoke test: sampling and a short token-exact training run on CUDA, as a user runs them, with a table.

    python benchmarks/gpu_smoke.py                    # the shipped testbed model on a CUDA GPU (no hub needed)
    python benchmarks/gpu_smoke.py --cpu              # the same steps on a CPU (checks the script)
    python benchmarks/gpu_smoke.py --shape ../shared/models/Qwen3-4B-Instruct-2507
                                                      # a random-weight model at that model's real size, one GPU
    python benchmarks/gpu_smoke.py --shape DIR --cpu  # the same steps on the scaled shape (ssd testbed scaled)

Testbed mode samples 64 testbed problems (`ssd sample`, transformers backend), then trains a few steps four
ways (plain, LoRA, and each under `accelerate launch --config_file configs/accelerate/fsdp.yaml` with one process).

Shape mode (`--shape DIR`, a directory with the real config.json, tokenizer and chat template, no weights) builds
random bf16 weights at DIR's real size on the GPU (`testbed.shapes.full_size_copy`; on a CPU the scaled copy of
`ssd testbed scaled`), then measures on one device: sampling at the paper's decoding (T 1.5, top-k 20, top-p 0.8)
with vLLM (where it is installed) and with transformers, and one token-exact training run in bf16 under FSDP
with one process (Liger's kernels where liger-kernel is installed), and prints beside each measurement what
`ssd estimate` predicts for the same work on one GPU of this kind: tokens/s, peak memory, and training MFU
(trained tokens/s x the estimate's FLOPs per token / the GPU's dense bf16 peak; on a CPU the peak is a measured
float32 matmul). Random weights rarely draw a stop token, so samples run to max_new_tokens: a throughput test.

Every step is a real `ssd` command in a subprocess; `--json FILE` also writes the table's rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FSDP = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs" / "accelerate" / "fsdp.yaml"),
        "--num_processes", "1", "-m", "simplesd.cli"]
SSD = [sys.executable, "-m", "simplesd.cli"]


def run(cmd: list) -> float:
    """Runs one command; its wall seconds (a failure ends the benchmark with the command's last stderr)."""
    t0 = time.time()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return time.time() - t0


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def testbed_rows(work: Path, device: str) -> list[dict]:
    """The shipped testbed model: sampling, then plain, LoRA, FSDP and FSDP + LoRA training for 8 steps."""
    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    base = shipped_base()
    prompts = first_prompts(write_splits(read_build_manifest(base), work, names=("ssd",))["ssd"], work, 64)
    rows = []
    secs = run(SSD + ["sample", "--model", base, "--prompts", prompts, "--out", work / "sample", "--no-progress",
                      f"sample.device={device}", "sample.batch_size=32", "sample.max_new_tokens=256", "sample.n=2"])
    m = manifest(work / "sample")
    rows.append({"step": f"sample (transformers, {device})", "tokens_per_s": m["generate_tokens_per_s_this_run"],
                 "peak_gb": m["peak_gpu_memory_gb"], "wall_s": secs})
    run(SSD + ["filter", "--samples", work / "sample", "--out", work / "filter", "filter.holdout_fraction=0"])
    train = ["--model", base, "--data", work / "filter" / "train.jsonl", "--no-progress", "train.max_steps=8",
             "train.learning_rate=3e-4", "train.effective_batch_size=8", "train.per_device_batch_size=8",
             "train.max_seq_length=1024", "train.save_steps=1000"]
    for name, prefix, extra in [("train (full, bf16 compute)", SSD, []), ("train (LoRA)", SSD, ["train.lora.enabled=true"]),
                                ("train (FSDP2, accelerate, 1 GPU)", FSDP, []),
                                ("train (FSDP2 + LoRA)", FSDP, ["train.lora.enabled=true"])]:
        out = work / f"train-{len(rows)}"
        secs = run(prefix + ["train", *train, *extra, "--out", out])
        m = manifest(out)
        rows.append({"step": f"{name} [{m['distributed']}]", "tokens_per_s": m["counts"]["mean_tokens_per_second"],
                     "peak_gb": m["peak_gpu_memory_gb"], "wall_s": secs})
    return rows


def first_prompts(split: str | Path, work: Path, n: int) -> Path:
    out = work / f"prompts-{n}.jsonl"
    out.write_text("".join(open(split).readlines()[:n]))
    return out


def device_kind(cpu: bool) -> tuple[str, float]:
    """(the `ssd estimate` GPU this device is, its dense bf16 peak FLOP/s; on a CPU: a measured float32 matmul)."""
    import torch

    from simplesd.estimate import GPUS

    if cpu:
        a = torch.randn(1024, 1024)
        t0 = time.perf_counter()
        for _ in range(20):
            a @ a
        return "h100", 20 * 2 * 1024**3 / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name().lower()
    kind = next((k for k in GPUS if k in name), "h100")
    return kind, GPUS[kind][0]


def shape_rows(shape_dir: Path, work: Path, cpu: bool, prompts_n: int, new_tokens: int, steps: int) -> tuple[list[dict], dict]:
    """Shape mode: build the model, sample with each backend, train once under FSDP; rows beside the estimate."""
    from simplesd.config import SSDConfig
    from simplesd.estimate import estimate, shape_of
    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    device = "cpu" if cpu else "cuda"
    model = work / "model"
    builder = ("from simplesd.testbed.shapes import scaled_copy as b; b(sys.argv[1], sys.argv[2])" if cpu else
               "from simplesd.testbed.shapes import full_size_copy as b; b(sys.argv[1], sys.argv[2], device='cuda')")
    build_s = run([sys.executable, "-c", f"import sys; {builder}", shape_dir, model])
    kind, peak = device_kind(cpu)
    prompts = first_prompts(write_splits(read_build_manifest(shipped_base()), work, names=("ssd",))["ssd"], work, prompts_n)
    sample = ["--model", model, "--prompts", prompts, "--no-progress", f"sample.max_new_tokens={new_tokens}",
              "sample.n=1", "sample.batch_size=32"]  # the paper's decoding: the defaults T 1.5, top-k 20, top-p 0.8
    measured = {}
    if importlib.util.find_spec("vllm") is not None:
        measured["vllm"] = (run(SSD + ["sample", *sample, "--out", work / "sample-vllm", "sample.backend=vllm"]), work / "sample-vllm")
    measured["transformers"] = (run(SSD + ["sample", *sample, "--out", work / "sample", f"sample.device={device}"]), work / "sample")
    records = [json.loads(line) for f in sorted((work / "sample").glob("shard-*.jsonl")) for line in open(f)]
    mean_prompt = sum(r["prompt_tokens"] for r in records) / len(records)
    mean_sample = sum(r["completion_tokens"] for r in records) / len(records)
    run(SSD + ["filter", "--samples", work / "sample", "--out", work / "filter", "filter.holdout_fraction=0"])
    liger = importlib.util.find_spec("liger_kernel") is not None and not cpu
    seq = int(mean_prompt + mean_sample) + 8
    train = ["--model", model, "--data", work / "filter" / "train.jsonl", "--no-progress", f"train.max_steps={steps}",
             "train.effective_batch_size=8", "train.per_device_batch_size=8", f"train.max_seq_length={seq}",
             "train.save_steps=100000", "train.precision=" + ("fp32" if cpu else "bf16"),
             f"train.use_liger_kernel={'true' if liger else 'false'}", "--out", work / "train"]
    train_s = run(FSDP + ["train", *train])
    tm = manifest(work / "train")

    cfg = SSDConfig()
    cfg.model.name_or_path = str(model)
    cfg.train.per_device_batch_size, cfg.train.max_seq_length, cfg.train.use_liger_kernel = 8, seq, liger
    cfg.filter.holdout_fraction = 0.0
    sh = shape_of(str(model))
    # the same work on one GPU of this kind: these prompts, the measured lengths (the FLOPs per trained token too)
    est = estimate(cfg, prompts_n, mean_sample, mean_prompt, gpus=1, gpu=kind, shape=sh)
    flops_per_token, est_train_tps = est["training"]["flops_per_token"], est["training"]["tokens_per_s"]
    rows = [{"step": f"build random bf16 weights ({sh.params() / 1e9:.2f} B parameters, {device})" if not cpu else
             f"build the scaled shape ({sh.params() / 1e6:.1f} M parameters)", "tokens_per_s": None, "peak_gb": None,
             "wall_s": build_s, "estimate_tokens_per_s": None, "estimate_peak_gb": None, "mfu": None}]
    for backend, (secs, d) in measured.items():
        m = manifest(d)
        rows.append({"step": f"sample ({backend}, T 1.5, top-k 20, top-p 0.8, {prompts_n} x {new_tokens} tokens)",
                     "tokens_per_s": m["generate_tokens_per_s_this_run"], "peak_gb": m["peak_gpu_memory_gb"], "wall_s": secs,
                     "estimate_tokens_per_s": est["sampling"]["tokens_per_s"] if backend == "vllm" else None,
                     "estimate_peak_gb": est["sampling"]["memory_gb_per_gpu"] if backend == "vllm" else None, "mfu": None})
    if "vllm" not in measured:
        rows.append({"step": "sample (vllm): not measured, vLLM is not installed here", "tokens_per_s": None, "peak_gb": None,
                     "wall_s": None, "estimate_tokens_per_s": est["sampling"]["tokens_per_s"],
                     "estimate_peak_gb": est["sampling"]["memory_gb_per_gpu"], "mfu": None})
    tps = tm["counts"]["mean_tokens_per_second"]
    rows.append({"step": f"train (token-exact, {tm['precision']}, {tm['distributed']}, liger {'on' if liger else 'off'}, "
                         f"{tm['counts']['optimizer_steps']} steps of 8 rows)",
                 "tokens_per_s": tps, "peak_gb": tm["peak_gpu_memory_gb"], "wall_s": train_s,
                 "estimate_tokens_per_s": round(est_train_tps), "estimate_peak_gb": est["training"]["memory_gb_per_gpu"],
                 "mfu": tps * flops_per_token / peak if tps else None,
                 "token_exact_rows": tm["counts"]["token_exact_rows"], "rows_rendered_differently": tm["counts"]["rows_rendered_differently"]})
    about = {"device": "CPU" if cpu else __import__("torch").cuda.get_device_name(), "estimate_for": f"1 x {kind}",
             "peak_flops": peak, "mean_prompt_tokens": round(mean_prompt, 1), "mean_sample_tokens": round(mean_sample, 1),
             "flops_per_trained_token": flops_per_token}
    return rows, about


def cell(v, fmt: str) -> str:
    return "not measured" if v is None else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the steps on a CPU")
    ap.add_argument("--shape", type=Path, metavar="DIR", help="a model directory (config, tokenizer, template): its real size")
    ap.add_argument("--prompts", type=int, default=64, help="shape mode: prompts sampled")
    ap.add_argument("--new-tokens", type=int, default=256, help="shape mode: tokens per sample")
    ap.add_argument("--steps", type=int, default=8, help="shape mode: training steps")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA device (--cpu runs the steps on a CPU)")
    work = Path(tempfile.mkdtemp(prefix="ssd-gpu-smoke-"))
    if args.shape:
        rows, about = shape_rows(args.shape, work, args.cpu, args.prompts, args.new_tokens, args.steps)
    else:
        rows, about = testbed_rows(work, "cpu" if args.cpu else "cuda"), {}
    device = "CPU" if args.cpu else torch.cuda.get_device_name()
    print(f"\n{device} · torch {torch.__version__}" + (f" · {args.shape.name}" if args.shape else "") + "\n")
    if args.shape:
        print(f"| step | tokens/s | ssd estimate tokens/s ({about['estimate_for']}) | peak GiB | estimate GB | MFU | wall s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['step']} | {cell(r['tokens_per_s'], ',.0f')} | {cell(r['estimate_tokens_per_s'], ',.0f')} | "
                  f"{cell(r['peak_gb'], '.2f')} | {cell(r['estimate_peak_gb'], '.1f')} | {cell(r['mfu'], '.1%')} | "
                  f"{cell(r['wall_s'], '.1f')} |")
    else:
        print("| step | tokens/s | peak GPU GiB | wall s |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['step']} | {r['tokens_per_s'] or 0:,.0f} | {r['peak_gb'] or 0:.2f} | {r['wall_s']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device, **about, "rows": rows}, indent=1))
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
