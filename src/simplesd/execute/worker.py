"""The grading worker: a pre-forked, pre-imported, sandboxed process that grades one program at a time.

Started by `GraderPool` as `python -m simplesd.execute.worker CONFIG` with an empty environment. It opens its
cgroup files, enters its sandbox once (sandbox.isolate_worker, which also makes a PID namespace for the worker's
children), and forks a **zygote**, PID 1 of that namespace, before it handles any job. For each job:

    worker --(pipes, over a unix socket)--> zygote --unshare(PID), fork--> program --unshare(mount, IPC)

The zygote never holds a job: it only forks, from inside the slot's cgroup, each program as PID 1 of a fresh PID
namespace (one fork per program: a second Python process per program, a supervisor, cost each program ~2.5 ms of
CPU in page faults), hands the worker the program's pidfd, and writes the program's wait status once it has
reaped it. The program reads its job from the worker, enters its own mount and IPC namespaces, sets up its
own /proc and /tmp, its rlimits, uid and seccomp, tells the worker "ok" on a setup pipe that it closes before
any of its code runs (so only the sandbox itself can report a sandbox failure), then runs `harness.run`, which
streams what the program produced per test. Only after the fork does the worker ask the pool for the expected
outputs (LiveCodeBench) or the test code (HumanEval); they never enter a process a program is forked from. The
worker compares, enforces the per-test wall-clock limit, stops at the first failure (unless told not to), and
kills the program's PID namespace.

Everything a program writes is untrusted: records are size-capped and parsed defensively (any failure is that
program's `runtime_error`), every text that reaches a verdict is valid UTF-8 and capped.

Protocol with the pool (length-prefixed JSON on the worker's stdin/stdout):
  pool -> {"kind", "code", "inputs"|"entry_point", "fn_name", "timeout", "timeouts", "output_rule", "early_exit", "limits"}
  worker -> {"status": "forked"}
  pool -> {"expected": [...], "atol", "oracle"} | {"record": true} | {"prompt", "test", "entry_point"} | {"setup", "tests": [...]}
  worker -> {"verdict", "tests_passed", "tests_total", "seconds", "detail", "first_failure"} (+ "outputs", "times")

Kinds: stdio and call (LiveCodeBench, CodeContests, users' stdin tests), values (EvalPlus: literal argument
lists, outputs compared with EvalPlus's rules; `record` returns the canonical solution's outputs), humaneval (a
`check(candidate)` run here, the candidate called in the program: HumanEval, users' check functions), assert
(MBPP's asserts, run in the program's namespace after it loaded, as MBPP's harness runs them; they are the
tests its prompt shows).
"""

from __future__ import annotations

# Imported here once so that each forked program finds them loaded (the reference's import block and more).
import builtins
import importlib
import json
import os
import select
import signal
import socket
import subprocess  # noqa: F401 - the reference guard's, imported once here, not by every program (2 ms each)
import sys
import tempfile
import time
import warnings

from . import cgroups, harness, rules, sandbox

for _name in rules.IMPORTED_BY_BLOCK:  # LiveCodeBench's import block, which every stdio and call program runs
    importlib.import_module(_name)
harness.preload_imports()

HEADER = harness.HEADER
DETAIL_CAP = 1000  # characters of any text a program influences that reach a verdict
RECORD_SLACK = 1 << 16  # a record's framing and fields beyond the output itself
SETUP_SECONDS = 30.0  # for the program's sandbox setup (mounts, limits): milliseconds normally


class _Deadline(Exception):
    pass


class _Gone(Exception):
    """The program's end of the pipe closed: it exited or was killed."""


class _Garbage(Exception):
    """The program wrote something that is not a record an honest harness writes."""


def clean_text(text, cap: int = DETAIL_CAP) -> str:
    """Valid UTF-8 (a lone surrogate becomes its escape), at most `cap` characters."""
    text = text if isinstance(text, str) else repr(text)
    if len(text) > cap:
        text = text[:cap] + f"... [{len(text) - cap} more characters]"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _Deadline
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise _Gone
        got += k
    return bytes(buf)


def _recv_until(fd: int, deadline: float, cap: int) -> dict:
    """One framed record from the program, or _Deadline / _Gone / _Garbage. Nothing in a record is trusted
    beyond being data: it can be forged by the program."""
    size = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))[0]
    if size > cap:
        raise _Garbage(f"a record of {size} bytes (at most {cap})")
    body = _read_exact(fd, size, deadline)
    try:
        rec = json.loads(body)
    except Exception as e:  # noqa: BLE001 - ValueError, RecursionError (200 kB of "["), MemoryError
        raise _Garbage(f"an unreadable record ({type(e).__name__})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("status"), str):
        raise _Garbage("a record that is not a status object")
    return rec


def _program_process(job: dict, cfg: dict, out_fd: int, in_fd: int, setup_fd: int) -> None:
    """In the program's own PID, mount and IPC namespaces: lock down, say so on the setup pipe and close it,
    then run the harness. Never returns."""
    try:
        sandbox.isolate_program(cfg["tmp_mb"], cfg["visible"])
        os.chdir("/tmp")
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sorted({0, 1, 2, out_fd, in_fd, setup_fd})
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
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                           "TMPDIR": "/tmp", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        tempfile.tempdir = "/tmp"
        seccomp = sandbox.install_seccomp()
        if cfg["require_seccomp"] and not seccomp:
            raise sandbox.SandboxError("no seccomp filter for this architecture")
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(setup_fd, f"{type(e).__name__}: {e}".encode(errors="replace")[:2000])
        finally:
            os._exit(70)
    os.write(setup_fd, b"ok")
    os.close(setup_fd)  # from here on the program's own code runs: it cannot speak for the sandbox
    try:
        harness.run(job, out_fd, in_fd)
    except BaseException as e:  # noqa: BLE001 - the program broke the harness: a runtime error of the program
        try:
            harness.send(out_fd, {"status": "runtime_error", "error": f"{type(e).__name__}: {e}"[:500]})
        except BaseException:  # noqa: BLE001
            pass
    os._exit(0)


def _program_start(out_w: int, in_r: int, setup_w: int, cfg: dict) -> None:
    """A fresh fork of the zygote, PID 1 of its own PID namespace and inside the slot's cgroup from birth: reads
    its one job, enters new mount and IPC namespaces and becomes the program. Never returns."""
    try:
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        job = harness.recv(in_r)
        if job is None:
            os._exit(0)
        sandbox.unshare(sandbox.CLONE_NEWNS | sandbox.CLONE_NEWIPC)
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(setup_w, f"program start: {type(e).__name__}: {e}".encode(errors="replace")[:2000])
        except OSError:
            pass
        os._exit(71)
    _program_process(job, cfg, out_w, in_r, setup_w)


class Zygote:
    """The process every program is forked from: forked from the worker before the worker handled any job (PID 1
    of the worker's children's PID namespace), it receives nothing but the four pipe ends of each new job (over
    a unix socket), forks the program, and sends back the program's pidfd (nothing when the fork failed). It
    joins the slot's cgroup once, so that every program is born inside it (moving a process between cgroups
    costs about 0.6 ms per hierarchy, each program). The OOM killer of a program's cgroup picks the process
    with the most memory: a program's processes share the zygote's pages and add their own, so it is theirs."""

    def __init__(self, cfg: dict, cgroup_fds: list[int], close_in_child: list[int]):
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self.sock.close()
            os.close(ready_r)
            for fd in close_in_child:
                os.close(fd)
            try:
                for fd in cgroup_fds:
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
            except OSError as e:
                os.write(ready_w, f"cannot join the program cgroup: {e}".encode(errors="replace"))
                os._exit(72)
            os.write(ready_w, b"ok")
            os.close(ready_w)
            _zygote_loop(child, cfg)
        child.close()
        os.close(ready_w)
        said = os.read(ready_r, 4096).decode(errors="replace")
        os.close(ready_r)
        self.pid = pid
        if said != "ok":
            raise sandbox.SandboxError(f"the zygote did not start: {said or 'it exited'}")

    def spawn(self, fds: list[int]) -> int | None:
        """Starts a program on these pipe ends (out_w, in_r, status_w, setup_w); its pidfd, or None."""
        socket.send_fds(self.sock, [b"s"], fds)
        msg, got, _, _ = socket.recv_fds(self.sock, 16, 1)
        if not msg:
            raise BrokenPipeError("the zygote is gone")
        return got[0] if got else None


def _zygote_loop(sock: socket.socket, cfg: dict) -> None:
    """Forks a program for each request and writes each program's wait status on its status pipe once it has
    ended. A program is PID 1 of a new PID namespace: unshare(CLONE_NEWPID) makes the next fork's, and setns back
    to the zygote's own namespace (of which it is PID 1, so in user-namespace mode too) makes the one after it
    possible."""
    running: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, status pipe)
    try:
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        own = os.open("/proc/self/ns/pid", os.O_RDONLY)
        while True:
            ready = select.select([sock, *running], [], [])[0]
            for pidfd in [fd for fd in ready if fd in running]:
                pid, status_w = running.pop(pidfd)
                _, status = os.waitpid(pid, 0)
                try:
                    os.write(status_w, f"{status}\n".encode())
                except OSError:
                    pass  # the worker gave up on this program
                os.close(status_w)
                os.close(pidfd)
            if sock not in ready:
                continue
            msg, fds, _, _ = socket.recv_fds(sock, 16, 4)
            if not msg:
                break
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                socket.send_fds(sock, [b"x"], [])
                continue
            out_w, in_r, status_w, setup_w = fds
            pid = -1
            try:
                sandbox.unshare(sandbox.CLONE_NEWPID)
                try:
                    pid = os.fork()
                finally:
                    if pid != 0:
                        sandbox.setns(own, sandbox.CLONE_NEWPID)
                if pid == 0:
                    sock.close()
                    _program_start(out_w, in_r, setup_w, cfg)
                pidfd = os.pidfd_open(pid)
            except OSError as e:  # no fork (EAGAIN) or no namespace: this program's sandbox did not start
                os.write(setup_w, f"zygote: {type(e).__name__}: {e}".encode(errors="replace")[:2000])
                for fd in fds:
                    os.close(fd)
                socket.send_fds(sock, [b"x"], [])
                continue
            socket.send_fds(sock, [b"p"], [pidfd])
            for fd in (out_w, in_r, setup_w):
                os.close(fd)
            running[pidfd] = (pid, status_w)
    except BaseException:  # noqa: BLE001
        pass
    while True:  # the worker is gone: wait for the last program, then leave
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    os._exit(0)


def _exit_kind(status: int | None, oom: bool) -> str:
    """How the program process ended, from its wait status and whether its cgroup saw an OOM kill."""
    if oom:
        return "memory"
    if status is None:
        return "runtime_error"
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout"
    return "runtime_error"


def _read_setup(fd: int, deadline: float) -> str:
    """What the program's setup (or the zygote, when it could not fork it) said: "ok", an error, or "" when it ended silently."""
    buf = b""
    while len(buf) < 4096:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return "the program's sandbox setup did not finish in time"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


class Worker:
    def __init__(self, cfg: dict, to_pool: int, from_pool: int, zygote: Zygote, oom_fd: int | None):
        self.cfg, self.to_pool, self.from_pool = cfg, to_pool, from_pool
        self.zygote, self.oom_fd = zygote, oom_fd

    def grade(self, job: dict) -> dict:
        t0 = time.monotonic()
        self.cap = job["output_cap"] + RECORD_SLACK
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe()
        pid_r, pid_w = os.pipe()
        setup_r, setup_w = os.pipe()
        try:
            program_pidfd = self.zygote.spawn([out_w, in_r, pid_w, setup_w])
        finally:
            for fd in (out_w, in_r, pid_w, setup_w):
                os.close(fd)
        fds = {"out_r": out_r, "in_w": in_w}
        oom_before = cgroups.oom_kills(self.oom_fd) if self.oom_fd is not None else 0
        result = None
        try:
            try:  # parsed here, not in the program's process, whose every page written is a copy
                harness.send(in_w, {**job, "code": harness.prepare(job["kind"], job["code"]), "prepared": True})
            except BrokenPipeError:
                pass  # the program ended before it read the job: it said why on the setup pipe
            harness.send(self.to_pool, {"status": "forked"})
            spec = harness.recv(self.from_pool)
            if spec is None:
                raise SystemExit(0)
            setup = _read_setup(setup_r, time.monotonic() + SETUP_SECONDS)
            if program_pidfd is None or setup != "ok":
                result = {"verdict": "sandbox_error", "detail": f"the program's sandbox did not start: {setup or 'no reason given'}"}
            elif job["kind"] == "humaneval":
                result = self._humaneval(job, spec, fds)
            elif job["kind"] == "assert":
                result = self._asserts(job, spec, fds)
            else:
                result = self._tests(job, spec, fds)
        finally:
            # the zygote writes the program's wait status once it has reaped it: a program that ended on its
            # own gets a moment to report how; one still running is killed now
            wait = 0.5 if result and result.get("_needs_status") else 0
            if program_pidfd is not None and not select.select([pid_r], [], [], wait)[0]:
                try:  # PID 1 of its namespace: takes every descendant along
                    signal.pidfd_send_signal(program_pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            status_line = _read_line(pid_r) if program_pidfd is not None else ""
            for fd in (out_r, in_w, pid_r, setup_r, *([program_pidfd] if program_pidfd is not None else [])):
                try:
                    os.close(fd)
                except OSError:
                    pass
            _reap_orphans()
        status = int(status_line) if status_line.isdigit() else None
        if result.pop("_needs_status", False):
            oom = self.oom_fd is not None and cgroups.oom_kills(self.oom_fd) > oom_before
            result["verdict"] = _exit_kind(status, oom)
            if oom:
                result["detail"] = f"{result.get('detail', '')}; over the program's memory limit (cgroup)".lstrip("; ")
            elif status is not None and os.WIFSIGNALED(status):
                result["detail"] = f"killed by signal {os.WTERMSIG(status)}"
        if "detail" in result:
            result["detail"] = clean_text(result["detail"])
        result["seconds"] = round(time.monotonic() - t0, 4)
        return result

    def _recv(self, fds: dict, deadline: float) -> dict:
        return _recv_until(fds["out_r"], deadline, self.cap)

    def _start(self, fds: dict, deadline: float):
        """Waits for the program to compile and load: returns None when ready, else a finished result."""
        try:
            rec = self._recv(fds, deadline)
        except _Deadline:
            return {"verdict": "timeout", "detail": "while loading the program"}
        except _Gone:
            return {"_needs_status": True, "detail": "the program exited while loading"}
        except _Garbage as e:
            return {"verdict": "runtime_error", "detail": f"the program wrote {e} while loading"}
        if rec["status"] == "ready":
            return None
        verdict = {"syntax_error": "syntax_error", "memory": "memory"}  # a program's "sandbox_error" is its own
        return {"verdict": verdict.get(rec["status"], "runtime_error"), "detail": rec.get("error", "")}

    def _tests(self, job: dict, spec: dict, fds: dict) -> dict:
        """stdio, call and values jobs: one record per input, compared here. `spec["record"]` (EvalPlus's expected
        outputs) returns the outputs and per-call seconds instead of comparing."""
        record = spec.get("record", False)
        total = len(job["inputs"])
        early = job.get("early_exit", True)
        base = {"tests_total": total, "tests_passed": 0}
        timeouts = job.get("timeouts") or [job["timeout"]] * total
        start = self._start(fds, time.monotonic() + job["timeout"])
        if start is not None:
            return {**base, **start}
        passed, first_bad, outputs, times = 0, None, [], []
        t_prev = time.monotonic()
        for i in range(total):
            limit = timeouts[i]
            try:
                rec = self._recv(fds, t_prev + limit)
            except _Deadline:
                bad = {"verdict": "timeout", "detail": f"test {i}: over {limit:g} s", "first_failure": i}
                first_bad = first_bad or bad
                break  # the program is stuck in this test: nothing after it can run
            except _Gone:
                first_bad = first_bad or {"_needs_status": True, "detail": f"test {i}: the program died", "first_failure": i}
                break
            except _Garbage as e:
                first_bad = first_bad or {"verdict": "runtime_error", "detail": f"test {i}: the program wrote {e}",
                                          "first_failure": i}
                break
            if record:  # the canonical solution's outputs: each must be data (or a digest of it)
                out = rec.get("output")
                if rec["status"] != "ok" or not isinstance(out, str) or (
                        not out.startswith("#sha256:") and _read_literal(out, VALUE_CAP << 6) is _NOT_DATA):
                    return {**base, "tests_passed": i, "verdict": "runtime_error", "first_failure": i,
                            "detail": f"input {i}: {rec.get('error') or rec['status'] if rec['status'] != 'ok' else 'not data'}"}
                outputs.append(rec["output"])
                now = time.monotonic()
                times.append(now - t_prev)  # what a test's limit bounds: the call and sending its output
                t_prev = now
                continue
            bad = _judge(job, spec, rec, i)
            t_prev = time.monotonic()
            if bad is None:
                passed += 1
                continue
            first_bad = first_bad or {**bad, "first_failure": i}
            if early:
                break
        if record and first_bad is None:
            return {**base, "tests_passed": total, "verdict": "passed", "outputs": outputs, "times": times}
        if first_bad is None:
            return {**base, "tests_passed": passed, "verdict": "passed"}
        return {**base, "tests_passed": passed, **first_bad}

    def _asserts(self, job: dict, spec: dict, fds: dict) -> dict:
        """MBPP: the test setup code, then each assert, sent to the loaded program and run in its namespace (as
        MBPP's harness runs them: after the code, whose classes the setup may build and whose imports the asserts
        may use; they may call methods on what it returns); the time limit covers loading and every test."""
        tests = spec["tests"]
        base = {"tests_total": len(tests), "tests_passed": 0}
        deadline = time.monotonic() + job["timeout"]
        start = self._start(fds, deadline)
        if start is not None:
            return {**base, **start}
        snippets = ([("the test setup", spec["setup"])] if spec.get("setup") else []) + [(f"test {i}", t) for i, t in enumerate(tests)]
        passed = 0
        for what, test in snippets:
            fail = {**base, "tests_passed": passed, "first_failure": passed}
            try:
                harness.send(fds["in_w"], {"test": test})
                rec = self._recv(fds, deadline)
            except (_Deadline, BrokenPipeError):
                return {**fail, "verdict": "timeout", "detail": f"{what}: over {job['timeout']:g} s for the whole program"}
            except _Gone:
                return {**fail, "_needs_status": True, "detail": f"{what}: the program died"}
            except _Garbage as e:
                return {**fail, "verdict": "runtime_error", "detail": f"{what}: the program wrote {e}"}
            if rec["status"] != "ok":
                verdict = {"failed": "failed", "memory": "memory"}.get(rec["status"], "runtime_error")
                return {**fail, "verdict": verdict, "detail": f"{what}: {rec.get('error', '')}"}
            passed += what != "the test setup"
        return {**base, "tests_passed": passed, "verdict": "passed"}

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
                rec = self._recv(fds, deadline)
            except _Deadline:
                raise CandidateFailed({"verdict": "timeout", "detail": f"over {job['timeout']:g} s"}) from None
            except _Gone:
                raise CandidateFailed({"_needs_status": True, "detail": "the program died"}) from None
            except _Garbage as e:
                raise CandidateFailed({"verdict": "runtime_error", "detail": f"the program wrote {e}"}) from None
            if rec["status"] == "ok":
                value = _read_literal(rec.get("output"), VALUE_CAP)
                if value is _NOT_DATA:
                    raise CandidateFailed({"verdict": "failed", "detail": "returned something that is not plain data "
                                           f"of at most {VALUE_CAP} characters"})
                return value
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
            return {**base, "verdict": "failed", "detail": f"{type(e).__name__}: {e}", "calls": calls}
        finally:
            scope.clear()
        return {**base, "verdict": "passed", "tests_passed": 1, "calls": calls}


VALUE_CAP = 1 << 20  # characters of a HumanEval return value's literal (the tests' values are far smaller)
_NOT_DATA = object()


def _read_literal(text, cap: int):
    """A returned value's literal read back, or _NOT_DATA (not a string, too long, not a literal, too deep)."""
    if not isinstance(text, str) or len(text) > cap:
        return _NOT_DATA
    try:
        return rules.read_value(text)
    except Exception:  # noqa: BLE001 - SyntaxError, ValueError, RecursionError, MemoryError
        return _NOT_DATA


def call_output_cap(expected_json: str) -> int:
    """The longest literal a correct call-based answer can have: Python's repr of a value equal to the
    expected JSON is at most 3.5x as long (JSON `[0,0]` vs `[False, False]`); 8x plus 64 KiB leaves room, and
    a longer (forged) value is a wrong answer without being parsed."""
    return 8 * len(expected_json) + (1 << 16)


def _judge(job: dict, spec: dict, rec: dict, i: int) -> dict | None:
    """None when test i passed, else the failing verdict (compared here, outside the program)."""
    kind, want = job["kind"], spec["expected"][i]
    st = rec["status"]
    out = rec.get("output")
    if st == "ok":
        if not isinstance(out, str):
            ok = False
        elif kind == "stdio":
            try:
                ok = rules.stdio_equal(out, want)
            except Exception:  # noqa: BLE001
                ok = False
        elif kind == "values" and (out.startswith("#sha256:") or want.startswith("#sha256:")):
            ok = out == want  # outputs too long to send, compared by their literals' digests
        elif kind == "values" and out == want and "nan" not in out and spec.get("oracle") != "poly_root":
            ok = True  # the same literal: the same value (EvalPlus's == holds; nan is never equal to itself)
        elif kind == "values":  # EvalPlus: against the canonical solution's output, its tolerance and oracle
            value, expected = _read_literal(out, call_output_cap(want)), _read_literal(want, VALUE_CAP << 6)
            try:
                oracle = spec.get("oracle", "")
                args = rules.unpack_args(job["inputs"][i]) if oracle in ("poly_root", "pyramid_surface", "digit_distance") else ()
                ok = (value is not _NOT_DATA and expected is not _NOT_DATA
                      and rules.values_equal(value, expected, spec.get("atol") or 0.0, oracle, args))
            except Exception:  # noqa: BLE001
                ok = False
        else:
            value = _read_literal(out, call_output_cap(want))
            try:
                ok = value is not _NOT_DATA and rules.call_equal(value, json.loads(want))
            except Exception:  # noqa: BLE001 - an expected value this Python cannot read
                ok = False
        return None if ok else {"verdict": "failed", "detail": f"test {i}: wrong answer, got {str(out)[:200]!r}"}
    if st in ("output_limit", "not_data"):
        return {"verdict": "failed", "detail": f"test {i}: {st}"}
    if st == "memory":
        return {"verdict": "memory", "detail": f"test {i}: {rec.get('error', '')}"}
    return {"verdict": "runtime_error", "detail": f"test {i}: {rec.get('error', '')}"}


def _read_line(fd: int) -> str:
    """One line from the zygote (the program's wait status), unbuffered (so that select() on the fd tells whether more has come)."""
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
    os.dup2(2, 1)  # stray prints go to stderr (which the pool drains), never into the protocol
    warnings.simplefilter("ignore")  # literal_eval of program output may warn; nothing here is for a reader
    sys.set_int_max_str_digits(rules.INT_DIGITS)
    try:
        # the cgroup files live outside the sandbox: opened now, written once by the zygote
        cgroup_fds = [os.open(p, os.O_WRONLY) for p in cfg["cgroup"]["procs"]]
        oom_fd = os.open(cfg["cgroup"]["oom_file"], os.O_RDONLY) if cfg["cgroup"]["oom_file"] else None
        info = sandbox.isolate_worker(cfg["visible"], cfg["user_namespace"])
        sandbox._compiled_filter()  # once, not in every program
        sandbox.prctl(sandbox.PR_SET_CHILD_SUBREAPER, 1)
        zygote = Zygote(cfg, cgroup_fds, close_in_child=[to_pool, from_pool, null] + ([oom_fd] if oom_fd else []))
        for fd in cgroup_fds:
            os.close(fd)
    except BaseException as e:  # noqa: BLE001
        harness.send(to_pool, {"status": "error", "error": f"{type(e).__name__}: {e}"})
        return
    harness.send(to_pool, {"status": "up", "info": info})
    worker = Worker(cfg, to_pool, from_pool, zygote, oom_fd)
    while (job := harness.recv(from_pool)) is not None:
        harness.send(to_pool, worker.grade(job))


if __name__ == "__main__":
    main()
