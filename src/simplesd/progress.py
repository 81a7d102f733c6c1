"""Progress that reads well where it is written: a redrawing tqdm bar in a terminal, and elsewhere (a log file, a
pipe, CI) a plain line per tenth of the work, so a log of `ssd demo > demo.log 2>&1` holds lines, not thousands
of carriage-return redraws. The libraries' own bars (transformers, datasets, huggingface_hub) are switched off
there too (`cli.main`), and training prints a line per logged step (`train._log_lines_class`)."""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    """Whether both stdout and stderr are terminals (a bar would be redrawn in place, not appended)."""
    return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def bar(total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """tqdm in a terminal, `Lines` elsewhere; nothing at all when not `enabled` (--no-progress)."""
    if enabled and interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit)
    return Lines(total, desc, unit, enabled, initial)


class Lines:
    """tqdm's update/set_postfix/close, written as a line per `every` of the total, at most one per `interval`
    seconds, and the last: `grade: 120/400 programs (30%), 12.5 programs/s, 0:00:22 left` (work done in seconds
    gets its last line only)."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0, every: float = 0.1,
                 interval: float = 5.0, stream=None):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.n = self.start_n = initial
        self.step = max(1, round(total * every)) if total else 1
        self.next = (initial // self.step + 1) * self.step
        self.t0, self.postfix, self.closed, self.shown = time.time(), "", False, initial
        self.interval, self.last = interval, self.t0
        self.stream = stream

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and (self.n >= self.total or (self.n >= self.next and time.time() - self.last >= self.interval)):
            self._line()
        if self.n >= self.next:
            self.next = (self.n // self.step + 1) * self.step

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def _line(self) -> None:
        done = self.n - self.start_n
        dt = time.time() - self.t0
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}s" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        if done and dt > 0:
            parts.append(f"{done / dt:.3g} {self.unit}s/s")
            if self.total and self.n < self.total:
                parts.append(f"{_clock((self.total - self.n) * dt / done)} left")
            else:
                parts.append(f"{_clock(dt)}")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.stream or sys.stderr, flush=True)
        self.shown, self.last = self.n, time.time()

    def close(self) -> None:
        if self.enabled and not self.closed and self.n != self.shown:
            self._line()  # stopped between two lines: say where
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
