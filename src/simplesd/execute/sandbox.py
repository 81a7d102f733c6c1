"""The sandbox every generated program runs in, built from what Linux gives: namespaces, mounts, rlimits,
credentials and seccomp (through ctypes; no external tool needed).

Two levels of isolation:
- the **worker** (one long-lived process per core, started with an empty environment) enters, once, a new
  network namespace (no interfaces but a down loopback: every connect fails), a new mount namespace in which
  home directories, the caller's working directory and every world-writable directory are hidden under empty
  tmpfs mounts (the Python installation is bound back read-only where it lay inside them), the whole tree is
  made read-only, and a fresh size-capped tmpfs is mounted on /tmp for program work directories; plus new IPC
  and UTS namespaces. As a non-root user it first enters a user namespace (root inside, mapped to the user).
- each **program** runs in a grandchild: a new PID namespace (it is PID 1 and sees only its own processes
  through a fresh /proc; killing it kills everything it started), its own work directory as cwd, rlimits
  (CPU seconds, address space, processes/threads, file size, open files, no core dumps), a separate
  unprivileged uid per worker when run as root (no capabilities; nothing outside its directory is writable;
  the process limit counts exactly its own tasks), no_new_privs, and a seccomp filter that refuses
  namespace/mount/ptrace/kernel-module/bpf calls and IPv4/IPv6/packet sockets.

`probe()` (run by the grader pool before any program) checks each promise with real hostile programs and the
pool refuses to grade when one does not hold: the sandbox fails closed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
NS_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 1, 0x8000, -100
SYS_MOUNT_SETATTR = 442

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER = 1, 38, 22, 36
SECCOMP_MODE_FILTER = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.syscall.restype = ctypes.c_long


class SandboxError(RuntimeError):
    """The sandbox cannot be set up or does not hold a promise: nothing is run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        e = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(e)} (errno {e})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _make_tree_read_only() -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    r = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    if r == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        _check(-1, "mount_setattr(/, read-only, recursive)")
    # kernels before 5.12: remount every mount read-only, deepest last
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in points:
        try:
            mount(None, p, None, MS_BIND | MS_REC | 32 | MS_RDONLY)  # 32 = MS_REMOUNT
        except SandboxError:
            pass  # the probe catches any mount that stayed writable


# ---------------------------------------------------------------------------------------------------------
# Worker-level isolation (once per worker)


def runtime_paths() -> list[str]:
    """Directories the interpreter must keep reading: its installation and the import path."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(os.path.realpath(p) for p in paths)


def isolate_worker(hide: list[str], tmp_size_mb: int = 512) -> dict:
    """Enters the worker's namespaces and builds its read-only, secret-free view of the filesystem."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if os.geteuid() != 0:
        unshare(CLONE_NEWUSER | flags)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    else:
        unshare(flags)
    mount("none", "/", None, MS_REC | MS_PRIVATE)

    keep = runtime_paths()
    hidden = []
    for d in sorted({os.path.realpath(h) for h in hide if h and os.path.isdir(h)}, key=len):
        if d == "/":
            continue
        # handles on what must stay visible under d, taken before d is covered
        inside = [k for k in keep if k == d or k.startswith(d + "/")]
        fds = [(k, os.open(k, os.O_PATH | os.O_DIRECTORY)) for k in inside]
        mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        for k, fd in fds:
            os.makedirs(k, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
            os.close(fd)
        hidden.append(d)
    _make_tree_read_only()
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size_mb}m,mode=1777")
    return {"hidden": hidden, "user_namespace": os.geteuid() != 0 or uid != 0}


# ---------------------------------------------------------------------------------------------------------
# Program-level isolation (in the grandchild, after the PID namespace)


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple:
    return (code, jt, jf, k)


_SYSCALLS = {  # denied syscalls by architecture (x86_64, aarch64)
    "x86_64": dict(arch=0xC000003E, socket=41, clone=56, clone3=435, deny=[
        101, 165, 166, 155, 161, 272, 308, 246, 320, 175, 313, 176, 321, 298, 250, 248, 249, 169, 167, 168, 163,
        179, 304, 303, 323, 310, 311, 428, 429, 430, 431, 432, 433, 442, 425]),
    "aarch64": dict(arch=0xC00000B7, socket=198, clone=220, clone3=435, deny=[
        117, 40, 39, 41, 51, 97, 268, 104, 294, 105, 273, 106, 280, 241, 219, 217, 218, 142, 224, 225, 89, 60,
        265, 264, 282, 270, 271, 428, 429, 430, 431, 432, 433, 442, 425]),
}
_DENIED_FAMILIES = (2, 10, 17)  # AF_INET, AF_INET6, AF_PACKET


def seccomp_program(machine: str | None = None) -> list[tuple] | None:
    """A classic-BPF seccomp filter: EPERM for namespace, mount, ptrace, module, bpf and kernel-key calls and
    for clone() with namespace flags; EACCES for IPv4/IPv6/packet sockets; ENOSYS for clone3 (so that libc
    falls back to clone, whose flags can be checked); everything else allowed. None on other architectures."""
    t = _SYSCALLS.get(machine or platform.machine())
    if t is None:
        return None
    LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    eperm, eacces, enosys = 0x00050000 | errno.EPERM, 0x00050000 | errno.EACCES, 0x00050000 | errno.ENOSYS
    prog = [_bpf(LD, 4), _bpf(JEQ, t["arch"], 1, 0), _bpf(RET, KILL), _bpf(LD, 0)]
    if t["arch"] == 0xC000003E:  # x32 ABI numbers have bit 30 set
        prog += [_bpf(JSET, 0x40000000, 0, 1), _bpf(RET, eperm)]
    for nr in t["deny"]:
        prog += [_bpf(JEQ, nr, 0, 1), _bpf(RET, eperm)]
    prog += [_bpf(JEQ, t["clone3"], 0, 1), _bpf(RET, enosys)]
    # clone: args[0] holds the flags (x86_64 and aarch64 alike)
    prog += [_bpf(JEQ, t["clone"], 0, 4), _bpf(LD, 16), _bpf(JSET, NS_FLAGS, 0, 1), _bpf(RET, eperm), _bpf(RET, ALLOW)]
    # socket: args[0] is the address family
    n = len(_DENIED_FAMILIES)
    prog += [_bpf(JEQ, t["socket"], 0, 1 + 2 * n), _bpf(LD, 16)]
    for fam in _DENIED_FAMILIES:
        prog += [_bpf(JEQ, fam, 0, 1), _bpf(RET, eacces)]
    prog += [_bpf(RET, ALLOW)]
    return prog


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_FILTER = None  # built once per worker, installed in every program process


def _compiled_filter():
    global _FILTER
    if _FILTER is None:
        prog = seccomp_program()
        if prog is not None:
            arr = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
            _FILTER = (arr, _SockFprog(len(prog), arr))
    return _FILTER


def install_seccomp() -> bool:
    compiled = _compiled_filter()
    if compiled is None:
        return False
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(compiled[1]), 0, 0), "seccomp")
    return True


def limit(cpu_seconds: int, memory_mb: int, max_tasks: int, file_mb: int, open_files: int = 64) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (max_tasks, max_tasks))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def drop_privileges(uid: int) -> None:
    """As root: become `uid` with no groups and no capabilities. (In a user namespace the only mapped uid is
    0; the seccomp filter and the read-only tree stand in for the missing uid switch there.)"""
    if os.getuid() == 0 and uid:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        except PermissionError:
            pass  # inside a user namespace: no other uid is mapped
