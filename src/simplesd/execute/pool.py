"""`GraderPool`: sandboxed workers (one per core by default) that grade programs in parallel.

The pool runs in the caller's process and never executes a program itself. It starts each worker with an
empty environment in its own session, checks the sandbox with hostile probe programs before grading anything
(fail closed), feeds jobs to the workers from one thread per worker, and restarts a worker that dies.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from . import harness
from .sandbox import SandboxError, runtime_paths

VERDICTS = ("passed", "failed", "runtime_error", "timeout", "memory", "no_code", "syntax_error")


@dataclass
class Limits:
    """Per-program resource limits (CPU seconds are for the whole program, all its tests)."""

    memory_mb: int = 4096
    max_tasks: int = 64
    file_mb: int = 16
    output_cap: int = 1 << 24
    cpu_seconds: int | None = None  # default: per-test timeout x tests + 2

    def for_job(self, timeout: float, tests: int) -> dict:
        cpu = self.cpu_seconds or int(timeout * max(tests, 1)) + 2
        return {"cpu_seconds": cpu, "memory_mb": self.memory_mb, "max_tasks": self.max_tasks, "file_mb": self.file_mb}


@dataclass
class Job:
    """One program to grade. `kind` is stdio, call or humaneval; `secret` holds what the program must not see
    (expected outputs, or the HumanEval prompt and test), sent to the worker only after the program forked."""

    kind: str
    code: str
    timeout: float
    inputs: list = field(default_factory=list)
    secret: dict = field(default_factory=dict)
    fn_name: str = ""
    entry_point: str = ""
    early_exit: bool = True


def _clean_env() -> dict:
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONDONTWRITEBYTECODE": "1"}


def _hidden_dirs() -> list[str]:
    """What the sandbox covers: homes, the caller's working directory, and every world-writable place."""
    hide = ["/root", "/home", os.path.expanduser("~"), os.getcwd(), "/tmp", "/var/tmp", "/dev/shm", "/run",
            "/mnt", "/media", "/srv", "/var/lib", "/var/log", "/var/mail", "/var/spool", "/etc/ssh"]
    extra = os.environ.get("SIMPLESD_SANDBOX_HIDE", "")
    return hide + [p for p in extra.split(os.pathsep) if p]


class _WorkerHandle:
    def __init__(self, slot: int, cfg: dict, limits: Limits):
        self.slot, self.cfg, self.limits = slot, cfg, limits
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        cfg = {**self.cfg, "uid": (self.cfg["uid_base"] + self.slot) if os.geteuid() == 0 else 0}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simplesd.execute.worker", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_clean_env(),
            start_new_session=True, cwd="/",
        )
        hello = harness.recv(self.proc.stdout.fileno())
        if not hello or hello.get("status") != "up":
            err = (hello or {}).get("error") or self.proc.stderr.read().decode(errors="replace")[-2000:]
            self.stop()
            raise SandboxError(f"the grading sandbox cannot start here: {err.strip()}")
        self.info = hello["info"]

    def grade(self, job: Job) -> dict:
        out, inp = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        header = {"kind": job.kind, "code": job.code, "inputs": job.inputs, "fn_name": job.fn_name,
                  "entry_point": job.entry_point, "timeout": job.timeout, "early_exit": job.early_exit,
                  "output_cap": self.limits.output_cap,
                  "limits": self.limits.for_job(job.timeout, len(job.inputs))}
        harness.send(inp, header)
        ack = harness.recv(out)
        if ack is None:
            raise BrokenPipeError("worker died")
        harness.send(inp, job.secret)
        result = harness.recv(out)
        if result is None:
            raise BrokenPipeError("worker died")
        return result

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        self.proc = None


class GraderPool:
    """Sandboxed grading workers. Use as a context manager; `grade(jobs)` returns results in job order."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, probe: bool = True,
                 uid_base: int | None = None, tmp_mb: int = 512):
        self.limits = limits or Limits()
        # as root, each worker's programs run under a uid no other process uses (so the process limit counts
        # exactly them); pools running side by side get different ranges
        uid_base = uid_base or 200_000 + (os.getpid() % 100_000) * 256
        self.cfg = {"hide": _hidden_dirs(), "tmp_mb": tmp_mb, "uid_base": uid_base, "require_seccomp": True}
        n = workers or len(os.sched_getaffinity(0))
        self.program_uids = range(uid_base, uid_base + n)
        self.workers: list[_WorkerHandle] = []
        try:
            for slot in range(n):
                self.workers.append(_WorkerHandle(slot, self.cfg, self.limits))
            self.sandbox_info = self.workers[0].info
            if probe:
                self.sandbox_info["probe"] = self.probe()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []

    def grade(self, jobs: list[Job], progress=None) -> list[dict]:
        results: list[dict | None] = [None] * len(jobs)
        todo: queue.Queue = queue.Queue()
        for i, job in enumerate(jobs):
            todo.put(i)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def serve(handle: _WorkerHandle):
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    try:
                        res = handle.grade(jobs[i])
                    except (BrokenPipeError, OSError):
                        handle.stop()  # a worker that died is replaced and the job retried once
                        handle.start()
                        res = handle.grade(jobs[i])
                    if res.get("verdict") == "sandbox_error":
                        raise SandboxError(f"sandbox failure while grading: {res.get('detail')}")
                except BaseException as e:  # noqa: BLE001
                    with lock:
                        errors.append(e)
                    return
                results[i] = res
                if progress is not None:
                    with lock:
                        progress(1)

        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------------------
    def probe(self) -> dict:
        """Runs hostile probes through the real pipeline; raises SandboxError if any promise does not hold."""
        canary = secrets.token_hex(8)
        os.environ["SIMPLESD_PROBE_CANARY"] = canary  # visible to a leaky sandbox, in env or /proc
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        outside = [os.path.join(os.getcwd(), f".simplesd-probe-{canary}"), f"/var/tmp/simplesd-probe-{canary}",
                   os.path.join(os.path.expanduser("~"), f".simplesd-probe-{canary}")]
        visible = {}
        for d in {os.path.realpath(os.path.expanduser("~")), os.path.realpath(os.getcwd())} - {"/", "/tmp"}:
            visible[d] = sorted({os.path.relpath(k, d).split(os.sep)[0] for k in runtime_paths()
                                 if k.startswith(d + os.sep)})
        code = PROBE.format(port=port, canary=canary, outside=outside, parent=os.getpid(), visible=visible)
        try:
            res = self.workers[0].grade(Job("call", code, timeout=10, inputs=["0"], fn_name="probe",
                                            secret={"expected": ['"ok"']}))
        finally:
            listener.close()
            os.environ.pop("SIMPLESD_PROBE_CANARY", None)
            written = [p for p in outside if os.path.exists(p)]
            for p in written:
                os.unlink(p)
        if written:
            raise SandboxError(f"sandbox self-test failed, refusing to run programs: a program wrote {written[0]}")
        if res.get("verdict") != "passed":
            raise SandboxError(f"sandbox self-test failed, refusing to run programs: {res.get('detail')}")
        return {"checked": ["network", "writes outside the work dir", "environment", "home and cwd hidden",
                            "other processes hidden", "process limit"], "passed": True}


# A call-based program that tries each escape and returns "ok" only if every one was refused; the worker
# compares its return value outside the program, like any test.
PROBE = '''
import os, socket, json
def _fail(what):
    return "LEAK: " + what
class Solution:
    def probe(self, *_):
        try:
            s = socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", {port}))
            return _fail("network")
        except OSError:
            pass
        for path in {outside!r}:  # the pool looks for these files outside afterwards
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600); os.close(fd)
            except OSError:
                pass
        fd = os.open("scratch.txt", os.O_CREAT | os.O_WRONLY, 0o600); os.write(fd, b"x"); os.close(fd)
        if "{canary}" in json.dumps(dict(os.environ)):
            return _fail("environment")
        for p in ("/proc/self/environ", "/proc/1/environ", "/proc/{parent}/environ"):
            try:
                with open(p, "rb") as f:
                    if b"{canary}" in f.read():
                        return _fail(p)
            except OSError:
                pass
        for d, allowed in {visible!r}.items():  # only the Python installation may show through
            try:
                extra = set(os.listdir(d)) - set(allowed)
                if extra:
                    return _fail("can list " + d + ": " + ",".join(sorted(extra)[:5]))
            except OSError:
                pass
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        if len(pids) > 2:
            return _fail("sees other processes: " + ",".join(pids))
        import threading
        started = 0
        try:
            for _ in range(1000):
                t = threading.Thread(target=__import__("time").sleep, args=(5,), daemon=True); t.start(); started += 1
            return _fail("started 1000 threads")
        except RuntimeError:
            pass
        return "ok"
'''
