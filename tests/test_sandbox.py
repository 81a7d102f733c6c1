"""The sandbox where users stand and against hostile programs: it starts from any working directory and HOME
with the venv anywhere; a program sees the environment's packages and nothing else; no program reaches what
another left behind; one program cannot starve, crash, hang or forge the grading of others; honest verdicts
in the same batch are unchanged."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import HUMANEVAL, ROOT, grader_pool, read_jsonl

from simplesd.execute.benchmarks import load_benchmark, make_job
from simplesd.execute.pool import Job, Limits


@pytest.fixture(scope="module")
def one():
    """One worker: every program of a test runs after the others in the same worker, the worst case for
    anything left behind."""
    with grader_pool(workers=1) as p:
        yield p


@pytest.fixture(scope="module")
def userns():
    """The mode non-root users get: the worker in a user namespace, the programs under the same uid as it."""
    with grader_pool(workers=1, user_namespace=True) as p:
        yield p


def stdio(code, inputs=("0",), expected=("ok",), timeout=3.0, **kw):
    return Job("stdio", code, timeout=timeout, inputs=list(inputs), secret={"expected": list(expected)}, **kw)


HONEST = stdio("print(int(input()) * 2)", ["21"], ["42"])


def _got(result) -> str:
    """What a program printed, from a failed verdict's detail."""
    return result["detail"].split("got ", 1)[1].strip("'").replace("\\n", "\n").strip()


def _humaneval_solutions(path: Path, n: int = 12) -> Path:
    probs = load_benchmark("humaneval", str(HUMANEVAL))[:n]
    path.write_text("".join(json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n" for p in probs))
    return path


def _ssd_check(cwd: Path, env: dict, out: Path, solutions: Path, python: str = sys.executable):
    return subprocess.run([python, "-m", "simplesd.cli", "check", "--benchmark", "humaneval", "--problems",
                           str(HUMANEVAL), "--solutions", str(solutions), "--out", str(out), "--no-progress"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# --- 1. it starts where users stand ---------------------------------------------------------------------

@pytest.mark.parametrize("where", ["cwd under /tmp", "cwd under home", "HOME under /tmp"])
def test_starts_from_any_directory_and_home(where, tmp_path):
    home_dir = Path(tempfile.mkdtemp(prefix=".ssd-test-", dir=Path.home()))
    try:
        env = dict(os.environ)
        cwd = {"cwd under /tmp": tmp_path, "cwd under home": home_dir, "HOME under /tmp": ROOT}[where]
        if where == "HOME under /tmp":
            env["HOME"] = str(tmp_path / "home")
            (tmp_path / "home").mkdir()
        (tmp_path / "proj" / "sub").mkdir(parents=True)  # directories inside directories the old sandbox hid
        r = _ssd_check(cwd, env, tmp_path / "out", _humaneval_solutions(tmp_path / "s.jsonl"))
        assert r.returncode == 0, r.stderr[-2000:]
        assert [v["verdict"] for v in read_jsonl(tmp_path / "out" / "verdicts.jsonl")] == ["passed"] * 12
    finally:
        shutil.rmtree(home_dir)


def test_a_venv_under_tmp_keeps_its_packages_importable(tmp_path):
    """A venv under /tmp (each program gets a fresh /tmp): numpy and a package that lives only in that venv
    import in the program, read-only."""
    import site

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    sp = Path(subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                             text=True, check=True).stdout.strip())
    # this test environment's packages (numpy, simplesd) reach the new venv through a .pth file, as in a venv
    # that installed them; one package lives in the venv under /tmp alone
    src = str(Path(__import__("simplesd").__file__).parents[1])
    (sp / "outer.pth").write_text("\n".join([*site.getsitepackages(), src]) + "\n")
    (sp / "only_in_tmp_venv.py").write_text("VALUE = 41\n")
    code = ("import numpy, only_in_tmp_venv, os\n"
            "try:\n    open(only_in_tmp_venv.__file__, 'a'); print('writable')\nexcept OSError:\n    pass\n"
            "print(int(numpy.array([only_in_tmp_venv.VALUE, 1]).sum()))")
    script = ("import json\nfrom simplesd.execute.pool import GraderPool, Job\n"
              "with GraderPool(workers=1) as p:\n"
              f"    r = p.grade([Job('stdio', {code!r}, timeout=10, inputs=['0'], secret={{'expected': ['42']}})])\n"
              "    print(json.dumps([r[0], p.sandbox_info['visible']]))")
    r = subprocess.run([str(py), "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    assert r.returncode == 0, r.stderr[-2000:]
    result, visible = json.loads(r.stdout.strip().splitlines()[-1])
    assert str(venv.resolve()) in visible
    assert result["verdict"] == "passed", result


def test_a_program_sees_the_environment_and_nothing_else(one, tmp_path):
    secret = tmp_path / "canonical.jsonl"  # a benchmark file beside the user's files, with canonical solutions
    secret.write_text('{"canonical_solution": "..."}\n')
    home_dir = Path(tempfile.mkdtemp(prefix=".ssd-test-", dir=Path.home()))
    (home_dir / "id_rsa").write_text("PRIVATE KEY")
    try:
        paths = [str(secret), str(HUMANEVAL), str(home_dir / "id_rsa"), str(ROOT / "README.md"), "/etc/shadow",
                 "/etc/hostname", "/var/tmp", "/home", "/run", "/sys/fs/cgroup", str(tmp_path)]
        # the directories above the environment's paths exist, holding only the way to them
        above = {}
        for v in one.cfg["visible"]:
            parts = Path(v).parts
            for i in range(1, len(parts)):
                above.setdefault(str(Path(*parts[:i])), set()).add(parts[i])
        code = ("import os\nseen = []\nfor p in %r:\n    if os.path.exists(p): seen.append(p)\n"
                "for d, names in %r.items():\n    seen += [os.path.join(d, n) for n in os.listdir(d) if n not in names]\n"
                "try:\n    import simplesd.testbed.tasks; seen.append('simplesd.testbed')\nexcept ImportError:\n    pass\n"
                "import numpy, json, decimal\nprint(seen)") % (paths, {d: sorted(n) for d, n in above.items() if d != "/"})
        got = one.grade([stdio(code, expected=["[]"]), HONEST])
        assert [r["verdict"] for r in got] == ["passed", "passed"], got
    finally:
        shutil.rmtree(home_dir)


# --- 2. nothing crosses from one program to another ----------------------------------------------------

SHM = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
       "KEY, IPC_CREAT = 0x55D0, 0o1000\n")


def test_no_files_or_ipc_from_earlier_programs(one):
    plant = SHM + (
        "sid = libc.shmget(KEY, 4096, IPC_CREAT | 0o666)\naddr = libc.shmat(sid, None, 0)\n"
        "ctypes.memmove(addr, b'left-behind', 11)\n"
        "import os\nfor p in ['/tmp/left-behind', '/dev/shm/left-behind', 'left-behind']:\n    open(p, 'w').write('x')\n"
        "for d in __import__('sys').path:\n"
        "    try:\n        open(os.path.join(d or '.', 'collections.py'), 'w').write('raise SystemExit')\n"
        "    except OSError:\n        pass\n"
        "print('ok' if sid >= 0 else 'no shm')")
    look = SHM + (
        "import os\nfound = [p for p in ['/tmp/left-behind', '/dev/shm/left-behind', 'left-behind'] if os.path.exists(p)]\n"
        "if libc.shmget(KEY, 0, 0) >= 0: found.append('shm')\n"
        "import collections\nprint(found)")
    got = one.grade([stdio(plant), stdio(look, expected=["[]"]), HONEST])
    assert [r["verdict"] for r in got] == ["passed", "passed", "passed"], got


def test_samples_cannot_pool_what_they_learn(one):
    """Six samples of one problem keep a log in /tmp: being called for test i+1 tells a sample that its guess
    for test i passed. Shared, the later samples pass without solving anything; here none does."""
    code = (
        "import json, os\nLOG = '/tmp/ssd-shared-log.json'\n"
        "log = json.load(open(LOG)) if os.path.exists(LOG) else {'known': {}, 'tries': {}, 'pending': None}\n"
        "if log['pending']:\n    log['known'][log['pending'][0]] = log['pending'][1]\n"
        "x = input()\nguess = log['known'].get(x)\n"
        "if guess is None:\n    t = log['tries'].get(x, 0); log['tries'][x] = t + 1; guess = 'abcd'[t % 4]\n"
        "log['pending'] = [x, guess]\njson.dump(log, open(LOG, 'w'))\nprint(guess)")
    got = one.grade([stdio(code, ["1", "2", "3"], ["d", "d", "d"]) for _ in range(6)])
    assert [r["verdict"] for r in got] == ["failed"] * 6


def test_no_program_finds_earlier_jobs_in_its_memory(one):
    """An earlier job's code and expected output (with markers), earlier HumanEval checks: none is in a later
    program's gc objects or anywhere in its readable memory; its own input is (the scanner works)."""
    a, b = "zq7" * 3, "xv9" * 3  # the marker is a + b; no program's source holds it whole
    earlier = Job("stdio", f"# {a}{b} in the code\nprint(input() + {a!r} + {b!r})", timeout=3, inputs=["1"], secret={"expected": [f"1{a}{b}"]})
    probs = load_benchmark("humaneval", str(HUMANEVAL))[:40]  # forked from the worker, a program found 12 checks
    scan = (
        "import ctypes, gc\nA, B = %r, %r\nown = input()\n"
        "checks = [o for o in gc.get_objects() if callable(o) and getattr(o, '__name__', '') in ('check', 'candidate')]\n"
        "hits = 0\n"
        "for line in open('/proc/self/maps').read().splitlines():  # the heap and every anonymous mapping\n"
        "    f = line.split()\n    lo, hi = (int(x, 16) for x in f[0].split('-'))\n"
        "    if not f[1].startswith('r') or hi - lo > 1 << 28 or (len(f) > 5 and f[5] not in ('[heap]', '[stack]')):\n"
        "        continue\n"
        "    chunk = ctypes.string_at(lo, hi - lo)\n"
        "    i = chunk.find(A.encode())\n"
        "    while i >= 0:\n        hits += chunk[i + len(A):i + len(A) + len(B)] == B.encode(); i = chunk.find(A.encode(), i + 1)\n"
        "print(len(checks), hits)") % (a, b)
    # the scanner's own input holds the marker once: it must count at least that
    got = one.grade([make_job(p, p.canonical_solution) for p in probs] + [earlier] +
                    [stdio(scan, [f"own {a}{b}"], ["never"])])
    assert [r["verdict"] for r in got[:-1]] == ["passed"] * 41
    checks, hits = map(int, _got(got[-1]).split())
    assert checks == 0
    assert hits >= 1  # its own input (the scanner finds what is there)
    r = one.grade([stdio(scan, ["nothing"], ["never"])])[0]
    assert _got(r).split() == ["0", "0"]  # nothing of the earlier job, in code or expected output


def test_a_full_tmp_is_the_filler_s_alone():
    with grader_pool(workers=1, tmp_mb=32) as p:
        fill = ("n = 0\ntry:\n    f = open('/tmp/fill', 'wb')\n    while True:\n        f.write(b'x' * (1 << 20)); f.flush(); n += 1\n"
                "except OSError as e:\n    print('full' if n >= 16 else n)")
        write = "open('/tmp/mine', 'wb').write(b'y' * (4 << 20))\nprint('ok')"
        got = p.grade([stdio(fill, expected=["full"]), stdio(write), HONEST])
    assert [r["verdict"] for r in got] == ["passed", "passed", "passed"], got


# --- 3. no program starves, crashes or hangs the grading of others ----------------------------------------

def _cgroups_or_skip(pool):
    info = pool.sandbox_info["cgroups"]
    if not info["version"]:
        if os.environ.get("CI"):
            raise AssertionError(f"CI's machine gives cgroups: {info}")
        pytest.skip(f"no cgroups here: {info['why_not']}")


def test_memory_limit_holds_across_children():
    with grader_pool(workers=1, limits=Limits(memory_mb=1024)) as p:
        _cgroups_or_skip(p)
        # each child holds 300 MiB while it lives; the parent counts the children still alive after a while
        code = ("import posix, time\n"
                "for _ in range(8):\n    if posix.fork() == 0:\n        x = bytearray(300 << 20)\n        time.sleep(30)\n"
                "time.sleep(4)\ndead = 0\nwhile True:\n    pid, _ = posix.waitpid(-1, posix.WNOHANG)\n"
                "    if pid == 0:\n        break\n    dead += 1\nprint(8 - dead)")
        attack, honest = p.grade([stdio(code, expected=["never"], timeout=8), HONEST])
        # the OOM killer took the program's processes, not the zygote that shares their cgroup: the worker
        # (which would restart without its zygote) is the same one
        worker = p.workers[0].proc.pid
        assert p.grade([HONEST])[0]["verdict"] == "passed" and p.workers[0].proc.pid == worker
    assert honest["verdict"] == "passed"
    # 8 children x 300 MiB, each under its own 1 GiB address-space limit: together they may hold at most 1 GiB
    assert attack["verdict"] == "memory" or int(_got(attack)) * 300 <= 1024, attack


def test_cpu_limit_holds_across_children():
    """Spinning children share one core between them (not one core each), and three honest CPU-bound programs
    in the other worker finish in time meanwhile."""
    with grader_pool(workers=2) as p:
        _cgroups_or_skip(p)
        spin = ("import posix, signal, time\nkids = []\nfor _ in range(8):\n    pid = posix.fork()\n"
                "    if pid == 0:\n        while True:\n            pass\n    kids.append(pid)\n"
                "t0 = time.time(); time.sleep(3)\nfor k in kids:\n    posix.kill(k, signal.SIGKILL)\n"
                "for k in kids:\n    posix.waitpid(k, 0)\n"
                "t = posix.times()\nprint(round((t.children_user + t.children_system) / (time.time() - t0), 1))")
        work = "s = 0\nfor i in range(4_000_000):\n    s += i\nprint(s)"
        want = str(sum(range(4_000_000)))
        got = p.grade([stdio(spin, expected=["never"], timeout=12)] + [stdio(work, expected=[want], timeout=4) for _ in range(3)])
    assert [r["verdict"] for r in got[1:]] == ["passed"] * 3, got
    cores_used = float(_got(got[0]))
    assert cores_used <= 1.2, got[0]  # 8 spinners on 2 cores would use 2 without the cgroup


FORGE = ("import os, struct, json\n"
         "def forge(body):\n    data = body if isinstance(body, bytes) else json.dumps(body).encode()\n"
         "    for fd in range(3, 12):\n"
         "        try:\n            os.write(fd, struct.pack('>I', len(data)) + data)\n        except OSError:\n            pass\n")


def test_forged_records_are_the_forgers_runtime_error(one):
    cases = {
        "claims a sandbox failure": (FORGE + "forge({'status': 'sandbox_error', 'error': 'x'})\nprint('ok')", "runtime_error"),
        "200 kB of [": (FORGE + "forge(b'[' * 200_000)\nprint('ok')", "runtime_error"),
        "a record too large to read": (FORGE + "os.write(3, struct.pack('>I', 2**31)); os.write(4, struct.pack('>I', 2**31))\nprint('ok')", "runtime_error"),
        "12 MB error": (FORGE + "forge({'status': 'runtime_error', 'error': 'e' * (12 << 20)})\nprint('ok')", "runtime_error"),
        "lone surrogate": ("raise ValueError('\\udcff')", "runtime_error"),
    }
    got = one.grade([stdio(code) for code, _ in cases.values()] + [HONEST])
    assert {k: r["verdict"] for k, r in zip(cases, got)} == {k: v for k, (_, v) in cases.items()}
    assert got[-1]["verdict"] == "passed"
    for r in got:
        assert len(r.get("detail", "")) < 1200
        r.get("detail", "").encode("utf-8")  # valid UTF-8: a lone surrogate would raise here
    # a forged 10 MB return value of a call-based program is a wrong answer, read without parsing it
    big = Job("call", FORGE + "class Solution:\n    def f(self, x):\n"
              "        forge({'status': 'ok', 'output': '[' + '1, ' * (5 << 20) + '1]'})\n        return x",
              timeout=5, inputs=["1"], fn_name="f", secret={"expected": ["1"]})
    r = one.grade([big, HONEST])
    assert [x["verdict"] for x in r] == ["failed", "passed"] and len(r[0]["detail"]) < 1200


def test_a_lone_surrogate_leaves_ssd_check_whole(tmp_path):
    sol = tmp_path / "s.jsonl"
    sol.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    raise ValueError('\\udcff')\n"}) + "\n" +
                   json.dumps({"task_id": "HumanEval/1", "completion": load_benchmark("humaneval", str(HUMANEVAL))[1].canonical_solution}) + "\n")
    r = _ssd_check(ROOT, dict(os.environ), tmp_path / "out", sol)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [v["verdict"] for v in rows] == ["runtime_error", "passed"]
    assert "\\udcff" in rows[0]["detail"]
    from simplesd.io import write_json  # every writer: a lone surrogate is written as its escape

    write_json(tmp_path / "x.json", {"detail": "bad \udcff"})
    assert b'"bad \\udcff"' in (tmp_path / "x.json").read_bytes()  # valid UTF-8: the JSON escape, as text


def test_worker_stderr_is_drained(one):
    """Whatever fills a worker's stderr is read (an unread pipe would stop the worker mid-write)."""
    pid = one.workers[0].proc.pid
    done = threading.Event()

    def flood():
        with open(f"/proc/{pid}/fd/2", "wb") as f:  # the write end of the worker's stderr pipe
            f.write(b"warning: flood\n" * 100_000)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(30)
    assert sum(map(len, one.workers[0].stderr_tail)) <= 2 * (1 << 16)
    assert one.grade([HONEST])[0]["verdict"] == "passed"


@pytest.mark.parametrize("mode", ["root", "user namespace"])
def test_programs_cannot_signal_the_grader(mode, one, userns):
    pool = one if mode == "root" else userns
    worker = pool.workers[0].proc.pid
    attacks = ["import posix, signal\nposix.kill(0, signal.SIGSTOP)\nprint('ok')",
               "import posix, signal\nposix.kill(0, signal.SIGKILL)\nprint('ok')",
               "import posix, signal\ntry:\n    posix.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('ok')",
               f"import posix, signal\ntry:\n    posix.kill({worker}, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('ok')",
               "import posix, signal\ntry:\n    posix.killpg(posix.getpgid(0), signal.SIGSTOP)\nexcept OSError:\n    pass\nprint('ok')"]
    got = pool.grade([x for a in attacks for x in (stdio(a), HONEST)])
    assert [r["verdict"] for r in got[1::2]] == ["passed"] * len(attacks), got
    assert pool.workers[0].proc.poll() is None and pool.workers[0].proc.pid == worker
    assert pool.grade([HONEST])[0]["verdict"] == "passed"


def test_user_namespace_mode_holds_the_same_promises(userns):
    assert userns.sandbox_info["user_namespace"] and userns.sandbox_info["probe"]["passed"]


# --- 4. the official rules -------------------------------------------------------------------------------

def test_humaneval_program_is_prompt_plus_completion(one):
    """HumanEval/38: a fenced answer that defines decode_cyclic alone calls encode_cyclic from the prompt."""
    p = {q.task_id: q for q in load_benchmark("humaneval", str(HUMANEVAL))}["HumanEval/38"]
    fenced = ("Here it is:\n```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```\n")
    body = "    return encode_cyclic(encode_cyclic(s))\n"
    got = one.grade([make_job(p, fenced), make_job(p, body)])
    assert [r["verdict"] for r in got] == ["passed", "passed"], got


def test_lcb_extraction_and_big_integers(one):
    from simplesd.prompts import Problem

    prob = Problem("q", benchmark="livecodebench", tests=[{"input": "3", "output": "6"}])
    stray = "```python\nprint(int(input()) * 2)\n```\nThen run:\n```"
    py3 = "```python3\nprint(int(input()) * 2)\n```"
    jobs = [make_job(prob, stray), make_job(prob, py3), make_job(prob, stray, extraction="lenient")]
    assert jobs[0].code == "Then run:" and make_job(prob, py3, extraction="lenient") is None
    got = one.grade(jobs)
    assert [r["verdict"] for r in got] == ["syntax_error", "passed", "passed"], got  # as lcb_runner: a compile error
    digits = Problem("d", benchmark="livecodebench", tests=[{"input": "10000", "output": "1" + "0" * 10000}])
    big = one.grade([make_job(digits, "```python\nprint(10 ** int(input()))\n```")])[0]
    assert big["verdict"] == "passed", big  # 10,001 digits: over Python's 4,300, under lcb_runner's 50,000


def test_extraction_rule_is_recorded_and_selectable(tmp_path):
    import lcb_fixtures

    rows, _ = lcb_fixtures.build(n_problems=2, tests_per_problem=2)
    problems = tmp_path / "lcb.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qid = rows[0]["question_id"]
    sol = tmp_path / "s.jsonl"
    sol.write_text(json.dumps({"task_id": qid, "completion": "```python\nprint(1)\n```\nRun:\n```"}) + "\n")
    for rule in ("official", "lenient"):
        r = subprocess.run([sys.executable, "-m", "simplesd.cli", "check", "--benchmark", "livecodebench",
                            "--problems", str(problems), "--solutions", str(sol), "--out", str(tmp_path / rule),
                            "--no-progress", f"eval.extraction={rule}"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        summary = json.loads((tmp_path / rule / "summary.json").read_text())
        assert summary["grader"]["extraction"] == rule


# --- a machine that cannot host the sandbox ---------------------------------------------------------------

def test_no_namespaces_is_one_line_and_exit_2(tmp_path):
    """Inside a user namespace whose mount namespaces are capped at 0 (as on a machine that refuses them),
    `ssd check` names what is missing in one line and exits 2, with no traceback and no output written."""
    if not shutil.which("unshare"):
        if os.environ.get("CI"):
            raise AssertionError("CI's machine has util-linux's unshare")
        pytest.skip("no unshare(1) here")
    sol = _humaneval_solutions(tmp_path / "s.jsonl", 2)
    cmd = (f"echo 0 > /proc/sys/user/max_mnt_namespaces && exec {sys.executable} -m simplesd.cli check --benchmark "
           f"humaneval --problems {HUMANEVAL} --solutions {sol} --out {tmp_path / 'out'} --no-progress")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", cmd], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssd: error: the grading sandbox cannot start here"), r.stderr
    assert "mount" in lines[0] and "namespace" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_a_missing_sandbox_is_found_before_sampling(command, tiny_model, problems_file, tmp_path):
    """`ssd run` with a benchmark (so `ssd demo`) and `ssd evaluate` check the sandbox (and load the model's
    config and tokenizer) before their first stage: on a machine that cannot host the sandbox they stop in
    seconds, not after sampling and training."""
    if not shutil.which("unshare"):
        if os.environ.get("CI"):
            raise AssertionError("CI's machine has util-linux's unshare")
        pytest.skip("no unshare(1) here")
    out = tmp_path / "out"
    args = {"run": f"run --model {tiny_model} --prompts {problems_file} --out {out} eval.benchmark=humaneval "
                   f"eval.problems={HUMANEVAL}",
            "evaluate": f"evaluate --model {tiny_model} --benchmark humaneval --problems {HUMANEVAL} --out {out}"}
    cmd = f"echo 0 > /proc/sys/user/max_mnt_namespaces && exec {sys.executable} -m simplesd.cli {args[command]} --no-progress"
    r = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", cmd], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.strip().splitlines()[-1].startswith("ssd: error: the grading sandbox cannot start here")
    assert "Traceback" not in r.stderr
    assert not (out / "sample").exists() and not list(out.glob("T*/samples"))
