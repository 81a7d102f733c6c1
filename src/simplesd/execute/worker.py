"""The grading worker: a pre-forked, pre-imported, sandboxed process that grades one program at a time.

Started by `GraderPool` as `python -m simplesd.execute.worker CONFIG` with an empty environment. It enters its
namespaces once (sandbox.isolate_worker), then for each job:

    worker --fork--> supervisor --unshare(PID, mount)--fork--> program (PID 1 of its own namespace)

The program process mounts its own /proc, enters its work directory, takes its rlimits, drops to the worker's
unprivileged uid, installs seccomp and runs `harness.run`, which streams what the program produced per test.
Only after the fork does the worker ask the pool for the expected outputs (LiveCodeBench) or the test code
(HumanEval), so the program's memory never holds them. The worker compares, enforces the per-test wall-clock
limit, stops at the first failure (unless told not to), kills the program's PID namespace and reaps everything.

Protocol with the pool (length-prefixed JSON on the worker's stdin/stdout):
  pool -> {"kind", "code", "inputs"|"entry_point", "fn_name", "timeout", "early_exit", "limits"}
  worker -> {"status": "forked"}
  pool -> {"expected": [...]} | {"prompt", "test", "entry_point"}
  worker -> {"verdict", "tests_passed", "tests_total", "seconds", "detail"}
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time

from . import harness, rules, sandbox

# Imported here once so that each forked program finds them loaded (the reference's import block and more).
import bisect, collections, copy, datetime, decimal, fractions, functools, heapq, io, itertools, math  # noqa: E401,F401,E402
import operator, random, re, statistics, string, typing, unittest.mock, array, queue, threading  # noqa: E401,F401,E402

HEADER = harness.HEADER


class _Deadline(Exception):
    pass


class _Gone(Exception):
    pass


def _recv_until(fd: int, deadline: float, cap: int = 64 << 20):
    """One framed record from the program, or _Deadline / _Gone (the program exited, crashed or sent garbage:
    records can be forged by the program, so nothing in them is trusted beyond being data)."""
    def read_exact(n):
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Deadline
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise _Deadline
            chunk = os.read(fd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise _Gone
            buf += chunk
        return buf

    size = HEADER.unpack(read_exact(HEADER.size))[0]
    if size > cap:
        raise _Gone  # a record no honest harness sends (the harness caps outputs itself)
    try:
        rec = json.loads(read_exact(size))
    except ValueError:
        raise _Gone from None
    if not isinstance(rec, dict) or not isinstance(rec.get("status"), str):
        raise _Gone
    return rec


def _program_process(job: dict, cfg: dict, workdir: str, out_fd: int, in_fd: int) -> None:
    """In the program's own PID and mount namespace: lock down, then run the harness. Never returns."""
    try:
        sandbox.mount("proc", "/proc", "proc", sandbox.MS_NOSUID | sandbox.MS_NODEV | sandbox.MS_NOEXEC)
        os.chdir(workdir)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sorted({0, 1, 2, out_fd, in_fd})
        prev = -1
        for fd in keep + [1 << 16]:
            if prev + 1 < fd:  # an empty range would close everything (close_range with last = -1)
                os.closerange(prev + 1, fd)
            prev = fd
        lim = job["limits"]
        sandbox.limit(lim["cpu_seconds"], lim["memory_mb"], lim["max_tasks"], lim["file_mb"])
        sandbox.drop_privileges(cfg["uid"])
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8",
                           "TMPDIR": workdir})
        tempfile.tempdir = workdir
        seccomp = sandbox.install_seccomp()
        if cfg["require_seccomp"] and not seccomp:
            raise sandbox.SandboxError("no seccomp filter for this architecture")
    except BaseException as e:  # noqa: BLE001
        try:
            harness.send(out_fd, {"status": "sandbox_error", "error": f"{type(e).__name__}: {e}"})
        finally:
            os._exit(70)
    try:
        harness.run(job, out_fd, in_fd)
    except BaseException as e:  # noqa: BLE001 - the program broke the harness: a runtime error of the program
        try:
            harness.send(out_fd, {"status": "runtime_error", "error": f"{type(e).__name__}: {e}"[:500]})
        except BaseException:  # noqa: BLE001
            pass
    os._exit(0)


def _supervise(job: dict, cfg: dict, workdir: str, fds: dict) -> None:
    """Between worker and program: enters the new PID + mount namespace, forks the program, reports its pid
    and, once it is gone, its wait status. Never returns."""
    try:
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        for name in ("out_r", "in_w", "pid_r"):
            os.close(fds[name])
        sandbox.unshare(sandbox.CLONE_NEWPID | sandbox.CLONE_NEWNS)
        pid = os.fork()
        if pid == 0:
            os.close(fds["pid_w"])
            _program_process(job, cfg, workdir, fds["out_w"], fds["in_r"])
        os.close(fds["out_w"])
        os.close(fds["in_r"])
        os.write(fds["pid_w"], f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(fds["pid_w"], f"{status}\n".encode())
    except BaseException:  # noqa: BLE001
        os._exit(71)
    os._exit(0)


def _exit_kind(status: int | None) -> str:
    """How the program process ended, from its wait status."""
    if status is None:
        return "runtime_error"
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"
    return "runtime_error"


class Worker:
    def __init__(self, cfg: dict, to_pool: int, from_pool: int):
        self.cfg, self.to_pool, self.from_pool = cfg, to_pool, from_pool
        self.seq = 0

    def grade(self, job: dict) -> dict:
        self.seq += 1
        workdir = tempfile.mkdtemp(prefix=f"p{self.seq}-", dir="/tmp")
        if os.getuid() == 0 and self.cfg["uid"]:
            try:
                os.chown(workdir, self.cfg["uid"], self.cfg["uid"])
            except PermissionError:
                pass
        fds = {}
        fds["out_r"], fds["out_w"] = os.pipe()
        fds["in_r"], fds["in_w"] = os.pipe()
        fds["pid_r"], fds["pid_w"] = os.pipe()
        t0 = time.monotonic()
        sup = os.fork()
        if sup == 0:
            os.close(self.to_pool)
            os.close(self.from_pool)
            _supervise(job, self.cfg, workdir, fds)
        for name in ("out_w", "in_r", "pid_w"):
            os.close(fds[name])
        program_pid, result = None, None
        try:
            line = _read_line(fds["pid_r"])
            program_pid = int(line) if line else None
            harness.send(self.to_pool, {"status": "forked"})
            spec = harness.recv(self.from_pool)
            if spec is None:
                raise SystemExit(0)
            if program_pid is None:
                result = {"verdict": "sandbox_error", "detail": "the program process did not start"}
            elif job["kind"] == "humaneval":
                result = self._humaneval(job, spec, fds)
            else:
                result = self._tests(job, spec, fds)
        finally:
            # the supervisor writes the program's wait status once it has reaped it: a program that ended on its
            # own gets a moment to report how; one still running is killed now
            wait = 0.5 if result and result.get("_needs_status") else 0
            if program_pid is not None and not select.select([fds["pid_r"]], [], [], wait)[0]:
                try:
                    os.kill(program_pid, signal.SIGKILL)  # PID 1 of its namespace: takes every descendant along
                except ProcessLookupError:
                    pass
            status_line = _read_line(fds["pid_r"])
            os.waitpid(sup, 0)
            for name in ("out_r", "in_w", "pid_r"):
                try:
                    os.close(fds[name])
                except OSError:
                    pass
            _reap_orphans()
            shutil.rmtree(workdir, ignore_errors=True)
        status = int(status_line) if status_line else None
        if result.pop("_needs_status", False):
            result["verdict"] = _exit_kind(status)
            if status is not None and os.WIFSIGNALED(status):
                result["detail"] = f"killed by signal {os.WTERMSIG(status)}"
        result["seconds"] = round(time.monotonic() - t0, 4)
        return result

    def _start(self, fds: dict, deadline: float):
        """Waits for the program to compile and load: returns None when ready, else a finished result."""
        try:
            rec = _recv_until(fds["out_r"], deadline)
        except _Deadline:
            return {"verdict": "timeout", "detail": "while loading the program"}
        except _Gone:
            return {"_needs_status": True, "detail": "the program exited while loading"}
        if rec["status"] == "ready":
            return None
        verdict = {"syntax_error": "syntax_error", "memory": "memory", "sandbox_error": "sandbox_error"}
        return {"verdict": verdict.get(rec["status"], "runtime_error"), "detail": rec.get("error", "")}

    def _tests(self, job: dict, spec: dict, fds: dict) -> dict:
        expected = spec["expected"]
        total = len(expected)
        early = job.get("early_exit", True)
        base = {"tests_total": total, "tests_passed": 0}
        timeout = job["timeout"]
        start = self._start(fds, time.monotonic() + timeout)
        if start is not None:
            return {**base, **start}
        passed, first_bad = 0, None
        for i, want in enumerate(expected):
            try:
                rec = _recv_until(fds["out_r"], time.monotonic() + timeout)
            except _Deadline:
                bad = {"verdict": "timeout", "detail": f"test {i}: over {timeout:g} s"}
                first_bad = first_bad or bad
                break  # the program is stuck in this test: nothing after it can run
            except _Gone:
                first_bad = first_bad or {"_needs_status": True, "detail": f"test {i}: the program died"}
                break
            bad = _judge(job["kind"], rec, want, i)
            if bad is None:
                passed += 1
                continue
            first_bad = first_bad or bad
            if early:
                break
        if first_bad is None:
            return {**base, "tests_passed": passed, "verdict": "passed"}
        return {**base, "tests_passed": passed, **first_bad}

    def _humaneval(self, job: dict, spec: dict, fds: dict) -> dict:
        base = {"tests_total": 1, "tests_passed": 0}
        deadline = time.monotonic() + job["timeout"]
        start = self._start(fds, deadline)
        if start is not None:
            return {**base, **start}
        calls = 0

        class CandidateFailed(Exception):
            def __init__(self, result):
                self.result = result

        def candidate(*args):
            nonlocal calls
            calls += 1
            harness.send(fds["in_w"], {"args": repr(args)})
            try:
                rec = _recv_until(fds["out_r"], deadline)
            except _Deadline:
                raise CandidateFailed({"verdict": "timeout", "detail": f"over {job['timeout']:g} s"}) from None
            except _Gone:
                raise CandidateFailed({"_needs_status": True, "detail": "the program died"}) from None
            if rec["status"] == "ok":
                return ast.literal_eval(rec["output"])
            if rec["status"] == "not_data":
                raise CandidateFailed({"verdict": "failed", "detail": "returned something that is not plain data"})
            kind = "memory" if rec["status"] == "memory" else "runtime_error"
            raise CandidateFailed({"verdict": kind, "detail": rec.get("error", "")})

        scope = {"__builtins__": builtins, "__name__": "__check__"}
        try:
            exec(compile(spec["prompt"], "<prompt>", "exec"), scope)
            scope[spec["entry_point"]] = candidate  # a check may call the solution by its name (HumanEval/33)
            exec(compile(spec["test"], "<test>", "exec"), scope)
            scope["check"](candidate)
        except CandidateFailed as e:
            return {**base, **e.result, "calls": calls}
        except AssertionError as e:
            return {**base, "verdict": "failed", "detail": f"assertion failed {e}".strip(), "calls": calls}
        except Exception as e:  # noqa: BLE001 - the check itself failed on what the candidate returned
            return {**base, "verdict": "failed", "detail": f"{type(e).__name__}: {e}"[:300], "calls": calls}
        return {**base, "verdict": "passed", "tests_passed": 1, "calls": calls}


def _judge(kind: str, rec: dict, want, i: int) -> dict | None:
    """None when the test passed, else the failing verdict (compared here, outside the program)."""
    st = rec["status"]
    if st == "ok":
        try:
            if kind == "stdio":
                ok = rules.stdio_equal(rec["output"], want)
            else:
                ok = rules.call_equal(ast.literal_eval(rec["output"]), json.loads(want))
        except Exception:  # noqa: BLE001 - a forged or unreadable record
            ok = False
        return None if ok else {"verdict": "failed", "detail": f"test {i}: wrong answer, got {str(rec.get('output'))[:200]!r}"}
    if st in ("output_limit", "not_data"):
        return {"verdict": "failed", "detail": f"test {i}: {st}"}
    if st == "memory":
        return {"verdict": "memory", "detail": f"test {i}: {rec.get('error', '')}"}
    return {"verdict": "runtime_error", "detail": f"test {i}: {rec.get('error', '')}"}


def _read_line(fd: int) -> str:
    """One line from the supervisor, unbuffered (so that select() on the fd tells whether more has come)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()


def _reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    cfg = json.loads(sys.argv[1])
    to_pool = os.dup(1)
    from_pool = os.dup(0)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    try:
        info = sandbox.isolate_worker(cfg["hide"], cfg["tmp_mb"])
        sandbox._compiled_filter()  # once, not in every program
        sandbox.prctl(sandbox.PR_SET_CHILD_SUBREAPER, 1)
    except BaseException as e:  # noqa: BLE001
        harness.send(to_pool, {"status": "error", "error": f"{type(e).__name__}: {e}"})
        return
    harness.send(to_pool, {"status": "up", "info": info})
    worker = Worker(cfg, to_pool, from_pool)
    while (job := harness.recv(from_pool)) is not None:
        harness.send(to_pool, worker.grade(job))


if __name__ == "__main__":
    main()
