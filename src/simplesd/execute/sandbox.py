"""The sandbox every generated program runs in, built from what Linux gives: namespaces, mounts, rlimits,
cgroups, credentials and seccomp (through ctypes; no external tool needed).

Two levels of isolation:
- the **worker** (one long-lived process per core, started with an empty environment) enters, once, new mount,
  network (no interface up: every connect fails), IPC and UTS namespaces (as a non-root user, inside a user
  namespace in which it is root, mapped to the user) and switches to a new root (`pivot_root`) that holds only
  what is on an allowlist, read-only: the system's /usr, /bin, /lib*, a few /etc files, /dev's null, zero,
  full, random and urandom, and the Python installation and environment the grader runs in (prefixes,
  site-packages and what their .pth files add). Nothing else of the machine exists there: not the homes, the
  working directory, the benchmark file or /tmp's contents.
- each **program** runs in a grandchild of a clean *zygote* (forked from the worker before it handled any job,
  so a program's memory holds no earlier job's code, expected outputs or checks): new PID, mount and IPC
  namespaces (it is PID 1, sees only its own processes in a fresh /proc, and gets a fresh size-capped tmpfs as
  /tmp and a System V IPC space of its own), its own session (signals to "my process group" reach only
  itself), a cgroup that caps memory, tasks and CPU for all its processes together (v2, or v1 hierarchies,
  where the machine lets the grader create cgroups), rlimits (CPU seconds, address space, processes, file
  size, open files, no core dumps), a separate unprivileged uid per worker when run as root, no_new_privs,
  and a seccomp filter that refuses namespace/mount/ptrace/kernel-module/bpf calls and IPv4/IPv6/packet sockets.

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
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_RECURSIVE, AT_FDCWD = 1, 2, 0x8000, -100
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


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), f"setns({nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_read_only(path: str) -> None:
    """Every mount at and below `path` read-only and nosuid."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    r = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
    if r == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        _check(-1, f"mount_setattr({path}, read-only, recursive)")
    # kernels before 5.12: remount every mount under path read-only
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in points:
        if p == path or p.startswith(path.rstrip("/") + "/"):
            try:
                mount(None, p, None, MS_BIND | MS_REC | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
            except SandboxError:
                pass  # the probe catches any mount that stayed writable


# ---------------------------------------------------------------------------------------------------------
# What a program may see: an allowlist


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
             "nsswitch.conf", "hosts", "host.conf", "mime.types", "os-release", "alternatives")
DEVICES = ("null", "zero", "full", "random", "urandom")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "shm": "/tmp"}  # /dev/shm is the program's own /tmp


def _pth_paths(site_dir: str) -> list[str]:
    """The directories a site directory's .pth files add to sys.path (editable installs among them)."""
    out = []
    try:
        names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth"))
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(site_dir, name), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")):
                path = os.path.join(site_dir, line)
                if os.path.isdir(path):
                    out.append(path)
    return out


def package_dir() -> str:
    """simplesd's own package directory: the worker imports it; programs find it empty."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def environment_paths() -> list[str]:
    """The Python installation and environment the grader runs in: what a program may import from (read-only).
    Prefixes, site-packages (the user site too, when enabled), the paths their .pth files add, the targets of
    setuptools' editable-install finders, and simplesd itself (for the worker). Not PYTHONPATH, not the
    working directory, not the script's directory."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, package_dir()}
    sites = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        sites.append(site.getusersitepackages())
    for d in sites:
        if os.path.isdir(d):
            paths.add(d)
            paths.update(_pth_paths(d))
    for name, mod in list(sys.modules.items()):
        mapping = getattr(mod, "MAPPING", None) if name.startswith("__editable___") else None
        if isinstance(mapping, dict):
            paths.update(v for v in mapping.values() if isinstance(v, str) and os.path.exists(v))
    # "/" (a Python built with prefix /, a .pth line "/") would show everything: its parts on the allowlist do
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)} - {"/"})
    # a path inside another one is shown with it
    return [p for i, p in enumerate(real) if not any(p.startswith(q.rstrip("/") + "/") for q in real[:i])]


def import_path(env: list[str]) -> list[str]:
    """The caller's sys.path as far as it lies inside the environment's paths `env` (what the worker is
    started with)."""
    inside = lambda p: any(p == q or p.startswith(q.rstrip("/") + "/") for q in env)  # noqa: E731
    return [p for p in sys.path if p and os.path.isdir(p) and inside(os.path.realpath(p))]


# ---------------------------------------------------------------------------------------------------------
# Worker-level isolation (once per worker)


def _bind_into(root: str, path: str, fd: int) -> None:
    target = root + path
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)


def _pivot_root(root: str) -> str:
    """Makes `root` the filesystem root and lets go of the old one; chroot where pivot_root is refused (an
    initramfs root), with seccomp keeping programs from chroot themselves."""
    os.chdir(root)
    if _libc.syscall(_SYSCALLS[platform.machine()]["pivot_root"], b".", b".") == 0:
        _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
        os.chdir("/")
        return "pivot_root"
    os.chroot(".")
    os.chdir("/")
    return "chroot"


def isolate_worker(visible: list[str], user_namespace: bool) -> dict:
    """Enters the worker's namespaces and switches to a root that holds only `visible` (the environment's
    paths), the system's libraries and a minimal /dev, all read-only."""
    uid, gid = os.getuid(), os.getgid()
    # CLONE_NEWPID: the worker's first child, the zygote, is PID 1 of a namespace of its own (worker.Zygote)
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    if user_namespace:
        try:
            unshare(CLONE_NEWUSER | flags)
        except SandboxError as e:
            raise SandboxError(
                f"no user namespace for a non-root user ({e}): this machine must allow unprivileged user "
                "namespaces (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on Debian "
                "kernels; kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04), or run as root"
            ) from None
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    else:
        try:
            unshare(flags)
        except SandboxError as e:
            raise SandboxError(
                f"no mount, network, IPC and UTS namespaces for the grading workers ({e}): this machine or container "
                "must allow them (sysctls user.max_mnt_namespaces, user.max_net_namespaces, ... > 0; a Docker "
                "container under the default seccomp profile refuses them: run it with --privileged or "
                "--security-opt seccomp=unconfined)"
            ) from None
    mount("none", "/", None, MS_REC | MS_PRIVATE)

    shown = [p for p in SYSTEM_PATHS if os.path.lexists(p)]
    shown += [os.path.join("/etc", n) for n in ETC_FILES if os.path.exists(os.path.join("/etc", n))]
    shown += [os.path.join("/dev", n) for n in DEVICES if os.path.exists(os.path.join("/dev", n))]
    system = [os.path.realpath(p) for p in shown]
    shown += [p for p in visible if not any(p == q or p.startswith(q + "/") for q in system)]
    links = {p: os.readlink(p) for p in shown if p in SYSTEM_PATHS and os.path.islink(p)}
    # handles on everything shown, taken before the new root covers /tmp (a venv may live there)
    fds = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in shown if p not in links}
    root = "/tmp"  # any directory serves as the new root's mount point: pivot_root leaves it behind
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for p, target in links.items():
        os.symlink(target, root + p)
    for p, fd in fds.items():
        _bind_into(root, p, fd)
        os.close(fd)
    os.makedirs(root + "/proc")
    mount("/proc", root + "/proc", None, MS_BIND | MS_REC)  # the worker's view; each program mounts its own
    os.makedirs(root + "/tmp", mode=0o755, exist_ok=True)  # each program mounts a fresh tmpfs here
    os.makedirs(root + "/dev", exist_ok=True)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{root}/dev/{name}")
    make_read_only(root)
    switch = _pivot_root(root)
    return {"visible": visible, "root": switch, "user_namespace": user_namespace}


# ---------------------------------------------------------------------------------------------------------
# Program-level isolation (in the grandchild, after the PID namespace)


def isolate_program(tmp_mb: int, visible: list[str]) -> None:
    """In the program's own PID, mount and IPC namespaces, before any of its code runs: its own session (so that
    kill(0, ...) reaches nothing but itself), its own /proc, a fresh size-capped /tmp with the environment's
    paths that lay there (a venv under /tmp) bound back read-only, and simplesd's package directory empty."""
    os.setsid()
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # handles on what the fresh /tmp will cover, taken in this mount namespace (a bind needs its own mounts)
    under_tmp = {p: os.open(p, os.O_PATH) for p in visible if p.startswith("/tmp/")}
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    for path, fd in under_tmp.items():
        _bind_into("", path, fd)
        os.close(fd)
        make_read_only(path)
    mount("tmpfs", package_dir(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple:
    return (code, jt, jf, k)


_SYSCALLS = {  # denied syscalls by architecture (x86_64, aarch64)
    "x86_64": dict(arch=0xC000003E, socket=41, clone=56, clone3=435, pivot_root=155, deny=[
        101, 165, 166, 155, 161, 272, 308, 246, 320, 175, 313, 176, 321, 298, 250, 248, 249, 169, 167, 168, 163,
        179, 304, 303, 323, 310, 311, 428, 429, 430, 431, 432, 433, 442, 425]),
    "aarch64": dict(arch=0xC00000B7, socket=198, clone=220, clone3=435, pivot_root=41, deny=[
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
