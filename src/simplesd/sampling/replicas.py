"""Data-parallel sampling: `sample.data_parallel_size` replicas, each an `ssd sample --worker I/N` process on its
own GPUs taking every N-th shard of the same plan. On several nodes, run one `--worker I/N` per node on a shared
directory, then `ssd sample` once without --worker to write the manifest. A replica that crashes is a
`StageFailed` (exit 1), not bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import SSDConfig
from ..io import InputError, StageFailed


def parse_worker(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) for `ssd sample --worker`."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--worker: expected I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise InputError(f"--worker: need 0 <= I < N, got {text!r}")
    return i, n




def launch_replicas(cfg: SSDConfig, out_dir: Path, plan: dict, missing, progress: bool) -> str:
    """Runs sample.data_parallel_size `ssd sample --worker I/N` processes, each on its own
    tensor_parallel_size x pipeline_parallel_size GPUs (CUDA_VISIBLE_DEVICES), and follows their shards."""
    import torch

    from ..progress import bar as progress_bar

    s = cfg.sample
    per = s.tensor_parallel_size * s.pipeline_parallel_size
    gpus = torch.cuda.device_count() if s.device != "cpu" else 0
    if gpus and gpus < per * s.data_parallel_size:
        raise InputError(f"config key 'sample.data_parallel_size': {s.data_parallel_size} replicas x {per} GPUs each "
                         f"need {per * s.data_parallel_size} GPUs, {gpus} visible")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(gpus)]
    from ..config import write_config

    fd, name = tempfile.mkstemp(suffix=".yaml", dir=out_dir, prefix=".replica-config-")
    os.close(fd)
    f = write_config(cfg, name)  # its paths rewritten relative to it: the replicas load it from out_dir
    procs, logs = [], []
    try:
        for i in range(s.data_parallel_size):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(ids[i * per : (i + 1) * per])
            logf = open(out_dir / f"replica-{i}.log", "w")
            logs.append(logf)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "simplesd.cli", "sample", "--config", str(f), "--out", str(out_dir),
                 "--worker", f"{i}/{s.data_parallel_size}", "--no-progress"], env=env, stdout=logf, stderr=subprocess.STDOUT))
        total = plan["num_problems"]
        sizes = [len(x) for x in plan["shards"]]
        bar = progress_bar(total, f"sample x{s.data_parallel_size}", "prompt", progress)
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            bar.update(total - sum(sizes[i] for i in missing()) - bar.n)
        bar.update(total - sum(sizes[i] for i in missing()) - bar.n)
        bar.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for lf in logs:
            lf.close()
        os.unlink(f)
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        tail = (out_dir / f"replica-{failed[0]}.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise StageFailed(f"{out_dir}: sampling replica(s) {failed} failed (see replica-{failed[0]}.log: "
                          f"{tail[0] if tail else 'no output'}); rerun to resume")
    return f"{s.data_parallel_size} replicas" + (f" x {per} GPUs" if gpus else " (cpu)")
