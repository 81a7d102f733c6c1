"""The lifecycle every stage shares, in one place: fingerprint, skip when complete, claim the directory, time the
phases, write outputs atomically, write the manifest last.

    st = Stage("filter", out_dir, config, inputs, work=("train.jsonl",))
    if st.finished():                 # complete for this config and these inputs: the manifest, nothing redone
        return st.manifest
    ...read and check every input...  # bad input fails here, before anything is written
    st.claim(overwrite)               # the directory is this config's (another's work is refused or deleted)
    st.write_jsonl("train.jsonl", rows)
    st.lap("write")                   # seconds since the last lap, as timings_s["write"]
    return st.finish(counts={...})    # manifest.json, with total seconds, versions, outputs

`manifest.py` keeps the records themselves (what a manifest holds, whose a directory is).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .io import atomic_path, atomic_write_jsonl, output_dir, write_json
from .manifest import claim_output_dir, fingerprint, load_manifest, stage_is_done, write_manifest

log = logging.getLogger(__name__)


class Stage:
    """One run of stage `name` in `out_dir` for `config` (the settings that decide its outputs) and `inputs` (their
    content fingerprints). `work`/`bookkeeping`/`section`/`adopt`: what `manifest.claim_output_dir` needs."""

    def __init__(self, name: str, out_dir: str | Path, config: Any, inputs: dict, *, work: tuple[str, ...] = (),
                 bookkeeping: tuple[str, ...] = (), section: str = "", adopt: bool = False, quiet: bool = False):
        self.name, self.config, self.inputs = name, config, inputs
        self.out_dir = output_dir(out_dir)
        self.fp = fingerprint(name, config, inputs)
        self._claim = dict(work=work, bookkeeping=bookkeeping, section=section, adopt=adopt)
        self.quiet = quiet
        self.manifest: dict | None = None
        self.outputs: list[str] = []
        self.timings: dict[str, float] = {}
        self.t0 = self._mark = time.time()

    def finished(self) -> bool:
        """True (and `self.manifest` set) when the directory already holds this run's complete outputs."""
        if not stage_is_done(self.out_dir, self.fp):
            return False
        if not self.quiet:
            log.info("%s: %s is complete for this config and these inputs; skipping", self.name, self.out_dir)
        self.manifest = load_manifest(self.out_dir)
        return True

    def claim(self, overwrite: bool = False, write: bool = True) -> None:
        """Makes the directory this run's (see `manifest.claim_output_dir`); `write=False` only checks."""
        claim_output_dir(self.out_dir, self.name, self.config, self.inputs, overwrite=overwrite, write=write,
                         **self._claim)

    def lap(self, phase: str) -> float:
        """Records the seconds since the last lap (or the start) as `phase`."""
        now = time.time()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._mark
        self._mark = now
        return self.timings[phase]

    def restart_clock(self) -> None:
        """Starts the next lap now (time spent before it, e.g. waiting on checks, is not counted in it)."""
        self._mark = time.time()

    @contextmanager
    def output(self, name: str):
        """A temporary path to write output `name` (a file or a directory) into, moved into place when the block
        ends without an error."""
        with atomic_path(self.out_dir / name) as tmp:
            yield tmp
        self.outputs.append(name)

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self.out_dir / name, obj)
        self.outputs.append(name)

    def write_jsonl(self, name: str, rows) -> int:
        n = atomic_write_jsonl(self.out_dir / name, rows)
        self.outputs.append(name)
        return n

    def finish(self, counts: dict, *, outputs: list[str] | None = None, config: Any = None,
               seeds: dict | None = None, extra: dict | None = None) -> dict:
        """Writes manifest.json last (its presence says the outputs are whole) and returns it. `outputs`: the
        files it lists (default: those written through this object); `config`: what it records, when more than
        the fingerprinted settings."""
        timings = {**self.timings, "total": time.time() - self.t0}
        listed = list(dict.fromkeys(self.outputs if outputs is None else outputs))
        self.manifest = write_manifest(self.out_dir, stage=self.name, fp=self.fp,
                                       config=self.config if config is None else config, inputs=self.inputs,
                                       outputs=listed, counts=counts, timings=timings, seeds=seeds, extra=extra)
        return self.manifest
