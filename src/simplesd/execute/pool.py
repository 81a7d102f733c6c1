"""`GraderPool`: sandboxed workers (one per core by default) that grade programs in parallel.

The pool runs in the caller's process and never executes a program itself. It creates one cgroup per worker
(where the machine allows), starts each worker with an empty environment in its own session, drains the
workers' stderr, checks the sandbox with hostile probe programs before grading anything (fail closed), feeds
jobs to the workers from one thread per worker, and restarts a worker that dies: a program on which a worker
dies twice is that program's `runtime_error`, not the run's.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from . import cgroups, harness
from .sandbox import SandboxError, environment_paths, import_path

VERDICTS = ("passed", "failed", "runtime_error", "timeout", "memory", "no_code", "syntax_error")


@dataclass
class Limits:
    """Per-program resource limits. With cgroups, memory, tasks and CPU (one core) hold for the program and all
    its descendants together; the rlimits (address space and CPU seconds per process) apply in any case."""

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
    """One program to grade. `kind` is stdio, call, values, humaneval or assert (worker.py); `secret` holds what
    the program must not see (expected outputs, the HumanEval prompt and test, MBPP's asserts), sent to the worker
    only after the program forked. `timeouts`: one limit per input (EvalPlus), else `timeout` for each."""

    kind: str
    code: str
    timeout: float
    inputs: list = field(default_factory=list)
    secret: dict = field(default_factory=dict)
    fn_name: str = ""
    entry_point: str = ""
    early_exit: bool = True
    timeouts: list = field(default_factory=list)
    output_rule: str = ""


def _clean_env(visible: list[str]) -> dict:
    """The workers' whole environment. One thread per BLAS (a program gets one core); the OpenBLAS core-type
    settings some machines need pass through."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join(import_path(visible)),
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update({k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ})
    return env


class _WorkerHandle:
    STDERR_KEPT = 1 << 16  # bytes of a worker's stderr kept for error messages; the rest is read and dropped

    def __init__(self, slot: int, cfg: dict, limits: Limits):
        self.slot, self.cfg, self.limits = slot, cfg, limits
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        as_root = os.geteuid() == 0 and not self.cfg["user_namespace"]
        cfg = {**self.cfg, "uid": (self.cfg["uid_base"] + self.slot) if as_root else 0,
               "cgroup": self.cfg["cgroups"][self.slot] if self.cfg["cgroups"] else {"procs": [], "oom_file": ""}}
        del cfg["cgroups"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simplesd.execute.worker", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_clean_env(self.cfg["visible"]),
            start_new_session=True, cwd="/",
        )
        # a worker's stderr is read all the time: a full pipe would stop the worker mid-write
        self.stderr_tail: collections.deque = collections.deque()
        self.drain = threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr_tail), daemon=True)
        self.drain.start()
        hello = harness.recv(self.proc.stdout.fileno())
        if not hello or hello.get("status") != "up":
            if hello:
                err = hello.get("error")
            else:
                self.proc.wait()
                self.drain.join(5)
                err = b"".join(self.stderr_tail).decode(errors="replace")[-2000:]
            self.stop()
            raise SandboxError(f"the grading sandbox cannot start here: {(err or 'the worker exited').strip()}")
        self.info = hello["info"]

    @classmethod
    def _drain(cls, stream, tail: collections.deque) -> None:
        kept = 0
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            tail.append(chunk)
            kept += len(chunk)
            while kept > cls.STDERR_KEPT and len(tail) > 1:
                kept -= len(tail.popleft())

    def grade(self, job: Job) -> dict:
        out, inp = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        header = {"kind": job.kind, "code": job.code, "inputs": job.inputs, "fn_name": job.fn_name,
                  "entry_point": job.entry_point, "timeout": job.timeout, "early_exit": job.early_exit,
                  "timeouts": job.timeouts, "output_rule": job.output_rule, "output_cap": self.limits.output_cap,
                  "limits": self.limits.for_job(job.timeout + sum(job.timeouts), len(job.inputs) if not job.timeouts else 1)}
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
        self.drain.join(5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        self.proc = None


class GraderPool:
    """Sandboxed grading workers. Use as a context manager; `grade(jobs)` returns results in job order.
    `user_namespace` (default: when not root) runs the workers in a user namespace, as a non-root user's are."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, probe: bool = True,
                 uid_base: int | None = None, tmp_mb: int = 512, user_namespace: bool | None = None):
        self.limits = limits or Limits()
        # as root, each worker's programs run under a uid no other process uses (so the process limit counts
        # exactly them); pools running side by side get different ranges
        uid_base = uid_base or 200_000 + (os.getpid() % 100_000) * 256
        user_namespace = os.geteuid() != 0 if user_namespace is None else user_namespace
        n = workers or len(os.sched_getaffinity(0))
        self.program_uids = range(uid_base, uid_base + n) if not user_namespace else range(0)
        self.workers: list[_WorkerHandle] = []
        self.cgroups: list[cgroups.SlotCgroups] = []
        try:
            # the zygote counts as a task of the cgroup
            self.cgroups, version, why_not = cgroups.setup(n, self.limits.memory_mb, self.limits.max_tasks + 1)
            self.cfg = {"visible": environment_paths(), "tmp_mb": tmp_mb, "uid_base": uid_base,
                        "require_seccomp": True, "user_namespace": user_namespace,
                        "cgroups": [{"procs": c.procs, "oom_file": c.oom_file} for c in self.cgroups]}
            for slot in range(n):
                self.workers.append(_WorkerHandle(slot, self.cfg, self.limits))
            self.sandbox_info = {**self.workers[0].info, "cgroups": self._cgroup_info(version, why_not)}
            if probe:
                self.sandbox_info["probe"] = self.probe()
        except BaseException:
            self.close()
            raise

    def _cgroup_info(self, version: str, why_not: str) -> dict:
        if version:
            return {"version": version, "per_program": {"memory_mb": self.limits.memory_mb,
                                                        "tasks": self.limits.max_tasks, "cpu_cores": 1}}
        return {"version": None, "why_not": why_not,
                "per_process_only": ["memory (address space)", "CPU seconds",
                                     "tasks (per uid as root; per user in a user namespace)"]}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []
        cgroups.teardown(self.cgroups)
        self.cgroups = []

    def grade(self, jobs: list[Job], progress=None) -> list[dict]:
        results: list[dict | None] = [None] * len(jobs)
        todo: queue.Queue = queue.Queue()
        for i in range(len(jobs)):
            todo.put(i)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def grade_one(handle: _WorkerHandle, job: Job) -> dict:
            for _ in range(2):  # a worker that died is replaced and the job retried once
                try:
                    return handle.grade(job)
                except (BrokenPipeError, OSError):
                    handle.stop()
                    handle.start()
            return {"verdict": "runtime_error", "tests_passed": 0, "tests_total": len(job.inputs) or 1,
                    "detail": "the grading worker died twice on this program"}

        def serve(handle: _WorkerHandle):
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    res = grade_one(handle, jobs[i])
                    if res.get("verdict") == "sandbox_error":  # only the sandbox's own setup reports this
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
        """Runs a hostile probe through the real pipeline; raises SandboxError if any promise does not hold."""
        from .sandbox import DEV_LINKS, DEVICES, ETC_FILES, SYSTEM_PATHS, package_dir

        canary = secrets.token_hex(8)
        os.environ["SIMPLESD_PROBE_CANARY"] = canary  # visible to a leaky sandbox, in env or /proc
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        visible = self.cfg["visible"]
        allowed = sorted({*SYSTEM_PATHS, *(f"/etc/{n}" for n in ETC_FILES), *visible, "/proc",
                          *(f"/dev/{n}" for n in (*DEVICES, *DEV_LINKS)),
                          "/tmp/scratch.txt"})
        cg_path = self.cgroups[0].path if self.cgroups else ""
        code = PROBE.format(port=port, canary=canary, parent=os.getpid(), allowed=allowed, package=package_dir(),
                            cgroup=cg_path)
        try:
            res = self.workers[0].grade(Job("call", code, timeout=20, inputs=["0"], fn_name="probe",
                                            secret={"expected": ['"ok"']}))
        finally:
            listener.close()
            os.environ.pop("SIMPLESD_PROBE_CANARY", None)
        if res.get("verdict") != "passed":
            raise SandboxError(f"sandbox self-test failed, refusing to run programs: {res.get('detail')}")
        return {"checked": ["network", "nothing visible beyond the allowlist", "writes outside /tmp and on sys.path",
                            "environment", "other processes hidden", "own session", "simplesd hidden",
                            "cgroup joined" if cg_path else "no cgroup", "process limit"], "passed": True}


# A call-based program that tries each escape and returns "ok" only if every one was refused; the worker
# compares its return value outside the program, like any test.
PROBE = '''
import os, socket, json, sys
def _fail(what):
    return "LEAK: " + what
def _inside(p, roots):
    return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)
class Solution:
    def probe(self, *_):
        try:
            s = socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", {port}))
            return _fail("network")
        except OSError:
            pass
        fd = os.open("/tmp/scratch.txt", os.O_CREAT | os.O_WRONLY, 0o600); os.write(fd, b"x"); os.close(fd)
        allowed = {allowed!r}
        # everything that exists is on the allowlist, or a directory on the way to it
        stack = ["/"]
        while stack:
            d = stack.pop()
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if p in allowed:
                    continue
                if p == "/tmp" or any(a.startswith(p + "/") for a in allowed):
                    if not os.path.islink(p):
                        stack.append(p)
                    continue
                return _fail("visible beyond the allowlist: " + p)
        # nothing writable but its own /tmp: not the tree, not sys.path, not the environment under /tmp
        for d in ["/", "/etc", "/dev"] + [p for p in sys.path if p] + allowed:
            r = os.path.realpath(d)
            if not os.path.isdir(r) or r == "/tmp" or r.startswith("/proc"):
                continue
            try:
                fd = os.open(os.path.join(r, ".probe-{canary}"), os.O_CREAT | os.O_WRONLY, 0o600); os.close(fd)
                return _fail("can write in " + r)
            except OSError:
                pass
        if "{canary}" in json.dumps(dict(os.environ)):
            return _fail("environment")
        for p in ("/proc/self/environ", "/proc/1/environ", "/proc/{parent}/environ"):
            try:
                with open(p, "rb") as f:
                    if b"{canary}" in f.read():
                        return _fail(p)
            except OSError:
                pass
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        if len(pids) > 2:
            return _fail("sees other processes: " + ",".join(pids))
        if os.getsid(0) != os.getpid():
            return _fail("shares a session with the grader")
        if int(open("/proc/self/oom_score_adj").read()) < 0:
            return _fail("exempt from the OOM killer")
        if os.listdir({package!r}):
            return _fail("simplesd's files are visible")
        if {cgroup!r} and not any(l.rstrip().endswith({cgroup!r}) for l in open("/proc/self/cgroup")):
            return _fail("not in its cgroup: " + open("/proc/self/cgroup").read())
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
