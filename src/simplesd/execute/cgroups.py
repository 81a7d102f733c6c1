"""Limits that hold for a program and all its descendants together: one cgroup per worker slot, which each of
that worker's programs runs in (one program at a time, so only the zygote is in it between programs).

rlimits are per process: 8 children x 800 MiB stay under a 1 GiB RLIMIT_AS each, and 60 spinning children each
have their own CPU seconds. A cgroup caps memory (`memory.max` / `memory.limit_in_bytes`, swap included),
tasks (`pids.max`) and CPU (one core: `cpu.max` / `cpu.cfs_quota_us`) for the whole program. cgroup v2 is used
where the caller's cgroup has (or may enable) the memory, pids and cpu controllers for its children: the root
cgroup, or a delegated cgroup without processes of its own (v2 refuses controllers to the children of a cgroup
that holds processes); else the v1 hierarchies of those controllers, where they are mounted and writable (root
in a container on a cgroup-v1 or hybrid host, as here). The v2 path is written to the kernel's rules but was not
run on this project's machines, which have v1 controllers only. Elsewhere `setup` says why not, and the
limits stay per process (rlimits), which the pool reports.

The pool creates the cgroups (it runs outside the sandbox); each worker opens the files it needs before it
enters its sandbox, and its zygote (which every program is forked from) writes its own pid into `cgroup.procs`
once and closes them: every program is born inside, and no program holds a cgroup file. The zygote
counts as one task of `pids.max` beyond the program's. When a program goes over the memory limit, the OOM
killer takes the process with the most memory: one of the program's, which share the zygote's pages and add
their own; should it ever take the zygote, the worker is restarted and the program is a `runtime_error`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass
class SlotCgroups:
    """The cgroup directories of one worker slot: one (v2) or one per v1 hierarchy."""

    version: int
    dirs: dict[str, str]  # controller (v2: "unified") -> directory
    path: str  # the memory cgroup's path as /proc/<pid>/cgroup shows it
    oom_file: str = ""  # memory.events (v2) or memory.oom_control (v1): holds the oom_kill count
    procs: list[str] = field(default_factory=list)  # cgroup.procs files the zygote writes its pid into


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else [""]:
                out[name] = path
    return out


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _v2_base() -> tuple[str, str] | None:
    """A cgroup v2 directory we may create children with memory, pids and cpu in; None where there is none."""
    mount = ROOT if os.path.exists(f"{ROOT}/cgroup.controllers") else f"{ROOT}/unified"
    own = _own_cgroups().get("")
    if own is None or not os.path.exists(f"{mount}/cgroup.controllers"):
        return None
    base = os.path.join(mount, own.lstrip("/")).rstrip("/")
    with open(f"{base}/cgroup.controllers") as f:
        available = f.read().split()
    if not all(c in available for c in CONTROLLERS):
        return None
    with open(f"{base}/cgroup.subtree_control") as f:
        enabled = f.read().split()
    missing = [c for c in CONTROLLERS if c not in enabled]
    if missing:
        # only possible where the cgroup has no processes of its own (or is the root): else EBUSY
        _write(f"{base}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    return base, own


def _v1_bases() -> dict[str, str] | None:
    own = _own_cgroups()
    bases = {}
    for c in CONTROLLERS:
        mount = f"{ROOT}/{c}"
        if c not in own or not os.path.exists(f"{mount}/cgroup.procs") or os.path.exists(f"{mount}/cgroup.controllers"):
            return None
        bases[c] = os.path.join(mount, own[c].lstrip("/"))
    return bases


def _remove_stale(base: str) -> None:
    """Empty cgroups left by pools whose process was killed (kill -9 skips `teardown`)."""
    try:
        names = [n for n in os.listdir(base) if n.startswith("simplesd-")]
    except OSError:
        return
    for name in names:
        pid = name.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            top = os.path.join(base, name)
            try:
                _remove([os.path.join(top, d) for d in os.listdir(top) if d.startswith("slot")] + [top])
            except OSError:
                pass


def setup(slots: int, memory_mb: int, max_tasks: int) -> tuple[list[SlotCgroups], str, str]:
    """Creates `slots` program cgroups with the limits set. Returns (cgroups, version "v2"/"v1"/"", reason
    when none could be made); an empty list means the limits stay per process."""
    tag = f"simplesd-{os.getpid()}-{secrets.token_hex(3)}"
    limit = str(memory_mb << 20)
    errors = []
    try:
        found = _v2_base()
    except OSError as e:
        found, _ = None, errors.append(f"cgroup v2: {e.strerror} ({e.filename})")
    if found:
        base, own = found
        _remove_stale(base)
        made = []
        try:
            top = os.path.join(base, tag)
            os.mkdir(top)
            made.append(top)
            _write(f"{top}/cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
            out = []
            for i in range(slots):
                d = f"{top}/slot{i}"
                os.mkdir(d)
                made.append(d)
                _write(f"{d}/memory.max", limit)
                if os.path.exists(f"{d}/memory.swap.max"):
                    _write(f"{d}/memory.swap.max", "0")
                _write(f"{d}/pids.max", str(max_tasks))
                _write(f"{d}/cpu.max", f"{CPU_PERIOD_US} {CPU_PERIOD_US}")
                out.append(SlotCgroups(2, {"unified": d}, f"{own.rstrip('/')}/{tag}/slot{i}", f"{d}/memory.events",
                                       [f"{d}/cgroup.procs"]))
            return out, "v2", ""
        except OSError as e:
            errors.append(f"cgroup v2: {e.strerror} ({e.filename})")
            _remove(reversed(made))
    if errors and errors[0].startswith("cgroup v2: Device or resource busy"):
        errors[0] += (" (v2 can hand controllers to child cgroups only from a cgroup without processes of its own: "
                      "the root, or one whose processes were moved into a leaf, as docker-in-docker entrypoints do)")
    own = _own_cgroups()
    try:
        bases = _v1_bases()
    except OSError as e:
        bases, _ = None, errors.append(f"cgroup v1: {e.strerror} ({e.filename})")
    if bases:
        for b in bases.values():
            _remove_stale(b)
        made = []
        try:
            out = []
            for b in bases.values():
                os.mkdir(f"{b}/{tag}")
                made.append(f"{b}/{tag}")
            for i in range(slots):
                dirs = {}
                for c, b in bases.items():
                    d = f"{b}/{tag}/slot{i}"
                    os.mkdir(d)
                    made.append(d)
                    dirs[c] = d
                m = dirs["memory"]
                _write(f"{m}/memory.limit_in_bytes", limit)
                if os.path.exists(f"{m}/memory.memsw.limit_in_bytes"):
                    _write(f"{m}/memory.memsw.limit_in_bytes", limit)
                _write(f"{dirs['pids']}/pids.max", str(max_tasks))
                _write(f"{dirs['cpu']}/cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(f"{dirs['cpu']}/cpu.cfs_quota_us", str(CPU_PERIOD_US))
                out.append(SlotCgroups(1, dirs, f"{own['memory'].rstrip('/')}/{tag}/slot{i}", f"{m}/memory.oom_control",
                                       [f"{d}/cgroup.procs" for d in dirs.values()]))
            return out, "v1", ""
        except OSError as e:
            errors.append(f"cgroup v1: {e.strerror} ({e.filename})")
            _remove(reversed(made))
    if not errors:
        errors.append("no cgroup v2 with the memory, pids and cpu controllers delegated to this process's cgroup, "
                      "and no writable v1 hierarchies for them")
    return [], "", "; ".join(errors)


def _remove(dirs) -> None:
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass


def teardown(cgroups: list[SlotCgroups]) -> None:
    """Removes the slot cgroups and their parents (every program in them has ended by now)."""
    parents = []
    for cg in cgroups:
        for d in cg.dirs.values():
            _remove([d])
            parents.append(os.path.dirname(d))
    _remove(dict.fromkeys(parents))


def oom_kills(fd: int) -> int:
    """The oom_kill count in an open memory.events / memory.oom_control file."""
    os.lseek(fd, 0, os.SEEK_SET)
    for line in os.read(fd, 4096).decode().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
