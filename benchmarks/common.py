"""What both benchmarks share: the command line for model and threads, and a work directory with a model."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: build the tiny testbed model)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return ap


def prepare(args) -> tuple[Path, Path]:
    """Sets the thread count; returns (a fresh work directory, the model directory)."""
    import torch

    from simplesd.testbed.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ssd-bench-"))
    return work, Path(args.model) if args.model else build_tiny_model(work / "model")
