"""File helpers every stage shares: clear input errors, JSONL reading, atomic writes, hashing.

Outputs are always written to a temporary name in the same directory and renamed into place, so a
killed stage never leaves a half-written file under the final name.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class InputError(Exception):
    """Bad user input. The CLI prints the message as one line and exits with status 2."""


class StageFailed(Exception):
    """Work that failed for another reason than its input (a sampling replica crashed). The CLI prints the message
    as one line and exits with status 1; rerunning resumes."""


def open_text(path: str | Path):
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def unreadable(path: str | Path, e: Exception) -> InputError:
    """The one-line error for a file that is not the UTF-8 text (or gzip of it) it should be."""
    where = str(path)
    if isinstance(e, UnicodeDecodeError):
        return InputError(f"{where}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); is it a binary file?")
    if isinstance(e, (gzip.BadGzipFile, EOFError, zlib.error)):
        return InputError(f"{where}: not a readable gzip file ({e or 'it ends early'})")
    return InputError(f"{where}: cannot read ({e.strerror if isinstance(e, OSError) and e.strerror else e})")


UNREADABLE = (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error, OSError)


def read_text(path: str | Path, what: str = "file") -> str:
    """A whole text file, or an InputError naming it (missing, a directory, binary, a broken gzip)."""
    path = require_file(path, what)
    try:
        with open_text(path) as f:
            return f.read()
    except UNREADABLE as e:
        raise unreadable(path, e) from None


def require_file(path: str | Path, what: str = "input file") -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a file")
    return path


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-blank line; a malformed line is an InputError naming file:line."""
    path = require_file(path)
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
    except UNREADABLE as e:
        raise unreadable(path, e) from None  # text is decoded in blocks: no exact line


def require_field(path: str | Path, lineno: int, record: dict, field: str, types: type | tuple = str) -> Any:
    """Returns record[field], or raises an InputError naming file:line and the field."""
    if field not in record:
        raise InputError(f"{path}:{lineno}: missing field '{field}'")
    value = record[field]
    if not isinstance(value, types):
        names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise InputError(f"{path}:{lineno}: field '{field}' must be {names}, got {type(value).__name__}")
    return value


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_open(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the committed file gets the usual permissions
    # a lone surrogate (a program's error message, a JSON "\udcff" escape in an input) is written as its escape:
    # every file stays valid UTF-8 and no write fails on one
    return os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace"), Path(tmp)


def _commit(f, tmp: Path, path: Path) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    f, tmp = _atomic_open(path)
    try:
        f.write(text)
        _commit(f, tmp, path)
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    path = Path(path)
    f, tmp = _atomic_open(path)
    n = 0
    try:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")  # default: dates etc. from Parquet
            n += 1
        _commit(f, tmp, path)
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise
    return n


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


_MISSING = object()


def read_json(path: str | Path, default: Any = _MISSING) -> Any:
    """A JSON file's data; `default` when given and the file does not exist; an InputError naming file:line."""
    if default is not _MISSING and not Path(path).is_file():
        return default
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def output_dir(path: str | Path, flag: str = "--out") -> Path:
    """`path` as a directory a stage may write in: an InputError (before any work) when it, or a directory
    above it, is an existing file, or when it cannot be created."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise InputError(f"{path}: {flag} must be a directory, but {'it' if p == path else p} is an existing file")
        if p.exists():
            break
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: {flag} is not writable")
    return path


def remove_path(path: str | Path) -> None:
    """Deletes a file or a directory tree, if there is one."""
    import shutil

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_path(src: str | Path, dst: str | Path) -> None:
    """Moves `src` (a file or a directory) onto `dst`, replacing what is there (a directory cannot be renamed over
    a non-empty one: it is deleted first)."""
    dst = Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        remove_path(dst)
    os.replace(src, dst)


@contextmanager
def atomic_path(path: str | Path):
    """A temporary sibling of `path` (`.NAME.tmp`) to write a file or a directory into; moved onto `path` when the
    block ends without an error, deleted when it fails. A killed writer leaves only the temporary, which
    `remove_stale_temporaries` and the next write clear."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    remove_path(tmp)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, path)


def remove_stale_temporaries(directory: str | Path) -> None:
    """Deletes temporaries a killed writer left behind (they never carry committed data)."""
    for tmp in Path(directory).glob(".*.tmp"):
        remove_path(tmp)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, default=str))


def fingerprint_path(path: str | Path) -> str:
    """A content fingerprint of a file or directory, cheap enough for multi-GB model folders.

    Files under 16 MiB are hashed whole; larger ones (weights) by size plus their first and last MiB, which
    changes whenever a checkpoint is rewritten. A path that does not exist (a hub id) is fingerprinted by name,
    and so is an unset one ("", which Path reads as the current directory: hashing all of it took 6 s in a checkout).
    """
    if str(path) == "":
        return "name:"
    path = Path(path)
    if not path.exists():
        return "name:" + str(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "checkpoint-" not in str(p))
    h = hashlib.sha256()
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(path) if p != path else p.name}\0{size}\0".encode())
        with open(p, "rb") as f:
            if size <= 16 << 20:
                h.update(f.read())
            else:
                h.update(f.read(1 << 20))
                f.seek(size - (1 << 20))
                h.update(f.read(1 << 20))
    return h.hexdigest()
