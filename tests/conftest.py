import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # this process's name when pytest-xdist runs it ("gw0", ...)
if XDIST_WORKER:
    # pytest-xdist runs a worker per core: torch's intra-op threads in each would only spin against each other
    # (measured: twice the CPU time, a slower suite); the stages' own subprocesses inherit the setting
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MODELS = ROOT.parent / "shared" / "models"  # the paper's models' real tokenizers, templates and configs, no weights
SHAPES = {"qwen3-instruct": "Qwen3-4B-Instruct-2507", "qwen3-thinking": "Qwen3-4B-Thinking-2507",
          "llama-3.1": "Llama-3.1-8B-Instruct", "qwen3-moe": "Qwen3-30B-A3B-Instruct-2507"}
HUMANEVAL = SHARED / "HumanEval.jsonl.gz"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real (random-weight) Llama + trained BPE tokenizer with a chat template, built once per session."""
    from simplesd.testbed.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture()
def problems_file(tmp_path) -> Path:
    """Twelve problems in rStar-Coder seed format, half stdin, half starter code."""
    p = tmp_path / "problems.jsonl"
    with open(p, "w") as f:
        for i in range(12):
            starter = "" if i % 2 == 0 else f"class Solution:\n    def f{i}(self, x: int) -> int:\n        "
            f.write(json.dumps({"question_id": f"q{i}", "question": f"Print {i} times the input" + " please" * i,
                                "starter_code": starter}) + "\n")
    return p


def grader_pool(**kwargs):
    """The real sandboxed grader pool. Where this machine cannot build the sandbox (no namespaces), the grader
    refuses to run; the test is skipped with its reason, except in CI, where that is a failure."""
    from simplesd.execute.pool import GraderPool
    from simplesd.execute.sandbox import SandboxError

    try:
        return GraderPool(**kwargs)
    except SandboxError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no sandbox on this machine: {e}")


class Ran:
    """What one `ssd` call did: like subprocess.CompletedProcess."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr


def ssd(*args, check=False, timeout=600, env=None, process=False):
    """`ssd ARGS` as a user runs it: in this process (simplesd.cli.main, its stdout and stderr captured, the
    environment and logging it changes restored after), or, with `process=True` or `env`, as a subprocess of this
    Python (what a test of the process itself needs: signals, another HOME, a timeout)."""
    args = [str(a) for a in args]
    if process or env is not None:
        r = subprocess.run([sys.executable, "-m", "simplesd.cli", *args], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, **(env or {})})
    else:
        r = _in_process(args)
    if check and r.returncode != 0:
        raise AssertionError(f"ssd {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def _in_process(args):
    import contextlib
    import io
    import logging

    from simplesd.cli import main

    environ, handlers = dict(os.environ), logging.getLogger().handlers[:]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as e:  # argparse, --help, --version
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        os.environ.clear()
        os.environ.update(environ)
        logging.getLogger().handlers[:] = handlers
        _progress_bars_back_on()
    return Ran(args, code, out.getvalue(), err.getvalue())


def _progress_bars_back_on():
    """--no-progress switches the libraries' bars off process-wide; the next test gets them back."""
    for name, switch in (("transformers.utils.logging", "enable_progress_bar"), ("datasets.utils.logging",
                         "enable_progress_bar"), ("huggingface_hub.utils", "enable_progress_bars")):
        if name in sys.modules:
            getattr(sys.modules[name], switch)()


def shared_by_the_workers(tmp_path_factory) -> Path:
    """This run's base temporary directory; under pytest-xdist, the one its workers' own directories are in."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if XDIST_WORKER else base


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """`ssd demo --quick`, run once per test run and shared by the tests that read it: (its directory, the call).
    Under pytest-xdist the first worker to need it makes it, under a file lock, and the others wait and read it
    (the tests only read it)."""
    from filelock import FileLock

    root = shared_by_the_workers(tmp_path_factory) / "quick-demo"
    root.mkdir(exist_ok=True)
    out, call = root / "demo", root / "call.json"
    with FileLock(root.with_suffix(".lock")):
        if not call.is_file():
            r = ssd("demo", "--quick", "--out", out, "--no-progress", check=True)
            call.write_text(json.dumps(vars(r)))
    return out, Ran(**json.loads(call.read_text()))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_train_file(path, n=16):
    """n chat rows {"messages": [user, assistant]}: small functions the tiny model can learn."""
    with open(path, "w") as f:
        for i in range(n):
            body = f"```python\ndef f{i}(x):\n    return x + {i}\n```"
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Write f{i}, adding {i}."},
                                             {"role": "assistant", "content": body}]}) + "\n")
    return path


def train_config(tiny_model, **train):
    """Training settings scaled to the tiny model (3e-3 LR, batches of 4)."""
    from simplesd.config import SSDConfig

    cfg = SSDConfig()
    cfg.model.name_or_path = str(tiny_model)
    cfg.train.learning_rate = 3e-3
    cfg.train.effective_batch_size = 4
    cfg.train.per_device_batch_size = 2
    cfg.train.epochs = 3
    cfg.train.max_seq_length = 256
    cfg.train.save_steps = 4
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


@pytest.fixture(autouse=True, scope="session")
def no_processes_left_behind():
    """After the whole session: no child process of the test run is left (no worker, program, zombie or orphan)."""
    yield
    import time

    deadline = time.time() + 10  # processes being killed get a moment; zombies would stay and fail this
    while _children_of(os.getpid()) and time.time() < deadline:
        time.sleep(0.1)
    assert _children_of(os.getpid()) == []


@pytest.fixture(scope="session")
def scaled(tmp_path_factory):
    """Each real shape, scaled down, built once per session; drawn at T = 1 without truncation, each step ends a
    sample with probability 0.1 (stop_probability), spread over the stop ids: samples end by themselves on every
    stop id, or run to max_new_tokens."""
    from simplesd.testbed.shapes import scaled_copy

    root = tmp_path_factory.mktemp("scaled")
    return {k: scaled_copy(MODELS / v, root / k, stop_probability=0.1) for k, v in SHAPES.items()}


def _humaneval_subset(tmp_path_factory, name, pick) -> Path:
    """A JSONL file of the HumanEval problems pick(lines) chooses, each line as published."""
    path = tmp_path_factory.mktemp("he") / f"{name}.jsonl"
    with gzip.open(SHARED / "HumanEval.jsonl.gz", "rt") as f:
        path.write_text("".join(pick(f.readlines())))
    return path


@pytest.fixture(scope="session")
def humaneval8(tmp_path_factory) -> Path:
    """The first eight HumanEval problems, as published."""
    return _humaneval_subset(tmp_path_factory, "humaneval8", lambda lines: lines[:8])


@pytest.fixture(scope="session")
def humaneval_short8(tmp_path_factory) -> Path:
    """The eight HumanEval problems with the shortest prompts, as published: a training test that must train every
    sampled row pays for each prompt token with the real vocabulary's logits (~120 k per token)."""
    return _humaneval_subset(tmp_path_factory, "humaneval_short8",
                             lambda lines: sorted(lines, key=lambda line: len(json.loads(line)["prompt"]))[:8])


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most four (each holds a torch, a tokenizer and a grader pool); none for
    `-m alone`, whose test uses every core itself."""
    if config.option.markexpr.strip() == "alone":
        return 0
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def pytest_collection_modifyitems(config, items):
    """A test marked `alone` (the full demo: sampling, training and grading on every core) under pytest-xdist
    would get one core and one torch thread, beside the other workers' tests: 18:54 where alone it took 12:24. It runs in
    a session of its own (`python -m pytest -m alone`, as CI does) and is skipped here with that reason."""
    if not XDIST_WORKER:
        return
    for item in items:
        if item.get_closest_marker("alone"):
            item.add_marker(pytest.mark.skip(reason="needs every core to itself: run it with python -m pytest -m alone"))
