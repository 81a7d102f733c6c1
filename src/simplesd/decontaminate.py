"""Decontamination: training problems that overlap the benchmark a model is graded on.

A training problem is flagged against a benchmark problem when their statements (question and starter code;
HumanEval's prompt) share a run of `n` words (13 by default, the usual convention), or are the same text,
after lower-casing and collapsing whitespace, punctuation and underscores (`prompts.words`). So a copy, a
re-wrapped or re-cased copy, and a paraphrase that keeps one 13-word run are all caught; two different problems
rarely share 13 words in a row. Rarely is not never: boilerplate such as AtCoder's "the input is given from
standard input in the following format" or a common constraints line recurs across problems, so an n-gram found
in `common` or more benchmark problems, or in `common` or more training problems, is not evidence (counted as
ignored in the report; 0 counts everything). The price: a benchmark problem copied into `common` or more
training problems, none of them equal to it after normalisation (dedup drops those that are), is missed.

The benchmark's n-grams go into one hash index (a dict from n-gram to benchmark problems), built once; each
training problem is then looked up n-gram by n-gram, so the cost grows with the total length of the texts, not
with prompts x problems. `ssd decontaminate` checks a prompt file against whole benchmark files; `ssd sample`
(and so `ssd run`) checks its prompts against the problems it will be evaluated on (`prompts.decontaminate`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .config import SSDConfig, reads
from .io import InputError, fingerprint_path, output_dir
from .prompts import Problem, read_problems, statement, words
from .stage import Stage

log = logging.getLogger(__name__)

@dataclass
class Target:
    """Benchmark problems to check against: `benchmark:path`, optionally a LiveCodeBench selection."""

    benchmark: str
    path: str
    start_month: str | None = None
    end_month: str | None = None
    difficulties: tuple[str, ...] = ()

    @property
    def selected(self) -> bool:
        return bool(self.start_month or self.end_month or self.difficulties)

    def describe(self) -> dict:
        d = {"benchmark": self.benchmark, "path": self.path}
        if self.selected:
            d["selection"] = {"start_month": self.start_month, "end_month": self.end_month,
                              "difficulties": list(self.difficulties)}
        return d


def parse_target(text: str, where: str = "--against") -> Target:
    from .execute.benchmarks import NAMES

    bench, _, path = text.partition(":")
    if bench not in NAMES or not path:
        raise InputError(f"{where}: expected BENCH:PATH with BENCH one of {', '.join(NAMES)}, got {text!r}")
    return Target(bench, path)


def benchmark_statements(target: Target) -> list[tuple[str, str]]:
    """(task_id, statement) of every benchmark problem the target selects."""
    from .execute.benchmarks import load_benchmark, select_window

    problems = load_benchmark(target.benchmark, target.path, tests=False)
    if target.selected:
        problems = select_window(problems, target.start_month, target.end_month, list(target.difficulties) or None)
    return [(p.task_id, statement(p)) for p in problems]


class NgramIndex:
    """Word n-grams of benchmark problems -> the problems that contain them."""

    def __init__(self, n: int = 13, common: int = 5):
        self.n, self.common = n, common
        self.problems: list[tuple[str, str]] = []  # (benchmark, task_id)
        self.targets: list[dict] = []
        self.grams: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.ignored = 0  # boilerplate n-grams of the benchmark (in `common`+ of its problems)
        self.ignored_in_prompts = 0  # and of the training problems, found by `flag`

    def add(self, target: Target) -> None:
        texts = benchmark_statements(target)
        self.targets.append({**target.describe(), "problems": len(texts)})
        for task_id, text in texts:
            j = len(self.problems)
            self.problems.append((target.benchmark, task_id))
            w = words(text)
            if not w:  # nothing to match (and an empty n-gram would match everything)
                continue
            self.exact[" ".join(w)].append(j)
            # a benchmark text shorter than n words is indexed whole: found only inside a longer training text
            n = min(self.n, len(w))
            for g in {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}:
                self.grams[g].append(j)

    def finish(self) -> NgramIndex:
        self.boilerplate: set[tuple[str, ...]] = set()
        if self.common:
            self.boilerplate = {g for g, ids in self.grams.items() if len(ids) >= self.common}
            for g in self.boilerplate:
                del self.grams[g]
            self.ignored = len(self.boilerplate)
        self.lengths = sorted({len(g) for g in self.grams})
        return self

    def describe(self) -> dict:
        return {"ngram": self.n, "ngram_common": self.common, "ignored_common_ngrams": self.ignored,
                "ignored_common_in_prompts": self.ignored_in_prompts, "benchmarks": self.targets}

    def flag(self, problems: list[Problem], indices: list[int] | None = None) -> list[dict]:
        """One entry per (training problem, benchmark problem) pair that overlaps, in input order.

        Two passes: the first finds, per training problem, the benchmark n-grams it contains that are mostly its
        own words (not half or more inside the benchmark's boilerplate n-grams: a frequent phrase next to the
        I/O section is not evidence); an n-gram found so in `common` or more training problems is boilerplate of
        the training set (a constraints line) and does not count either; then the pairs are read off."""
        found: list[dict[tuple[str, ...], None]] = []  # per problem: its benchmark n-grams, in text order
        spread: dict[tuple[str, ...], int] = defaultdict(int)
        texts = []
        for prob in problems:
            w = words(statement(prob))
            texts.append(" ".join(w))
            # words inside a boilerplate n-gram of the benchmark are not the problem's own
            covered = bytearray(len(w))
            if self.boilerplate:
                for i in range(len(w) - self.n + 1):
                    if tuple(w[i : i + self.n]) in self.boilerplate:
                        covered[i : i + self.n] = b"\1" * self.n
            mine: dict[tuple[str, ...], None] = {}
            for n in self.lengths:
                for i in range(len(w) - n + 1):
                    g = tuple(w[i : i + n])
                    # evidence: a shared run at least half of whose words are the problem's own
                    if g in self.grams and 2 * (n - sum(covered[i : i + n])) >= n:
                        mine[g] = None
            for g in mine:
                spread[g] += 1
            found.append(mine)
        common = {g for g, c in spread.items() if self.common and c >= self.common}
        self.ignored_in_prompts = len(common)
        flagged = []
        for pos, prob in enumerate(problems):
            hits: dict[int, list[str]] = defaultdict(list)
            for g in found[pos]:
                if g not in common:
                    for j in self.grams[g]:
                        hits[j].append(" ".join(g))
            exact = set(self.exact.get(texts[pos], ()))
            for j in sorted(set(hits) | exact):
                bench, task_id = self.problems[j]
                flagged.append({"index": indices[pos] if indices else pos, "prompt_id": prob.id, "benchmark": bench,
                                "task_id": task_id, "matched_ngrams": len(hits.get(j, ())), "exact": j in exact,
                                "example": hits[j][0] if hits.get(j) else texts[pos]})  # the first shared run
        return flagged


def build_index(targets: list[Target], n: int, common: int) -> NgramIndex:
    index = NgramIndex(n, common)
    for t in targets:
        index.add(t)
    return index.finish()


def run_targets(cfg) -> list[Target]:
    """What `ssd sample` checks its prompts against: the evaluation's problems (its selection) and
    prompts.decontaminate_against; none when prompts.decontaminate is off."""
    if not cfg.prompts.decontaminate:
        return []
    targets = []
    e = cfg.eval
    if e.benchmark and e.problems:
        t = Target(e.benchmark, e.problems)
        if e.benchmark == "livecodebench":
            t.start_month, t.end_month, t.difficulties = e.start_month, e.end_month, tuple(e.difficulties)
        targets.append(t)
    targets += [parse_target(x, "config key 'prompts.decontaminate_against'") for x in cfg.prompts.decontaminate_against]
    return targets


def targets_fingerprint(targets: list[Target]) -> dict:
    return {f"decontaminate:{t.benchmark}:{i}": fingerprint_path(t.path) for i, t in enumerate(targets)}


def counts_of(flagged: list[dict], prompts: int, index: NgramIndex) -> dict:
    by_bench: dict[str, dict] = {}
    for t in index.targets:  # several files of one benchmark add up
        by_bench.setdefault(t["benchmark"], {"problems": 0})["problems"] += t["problems"]
    for bench, b in by_bench.items():
        mine = [f for f in flagged if f["benchmark"] == bench]
        b.update(flagged_prompts=len({f["index"] for f in mine}), matched_problems=len({f["task_id"] for f in mine}),
                 exact=len({f["index"] for f in mine if f["exact"]}))
    hit = len({f["index"] for f in flagged})
    return {"prompts": prompts, "flagged": hit, "kept": prompts - hit, "by_benchmark": by_bench}


@reads("prompts")
def decontaminate(cfg: SSDConfig, out_dir: str | Path, *, against: list[str] | None = None, overwrite: bool = False) -> dict:
    """`ssd decontaminate`: every record of cfg.prompts' file (no dedup, no shuffle) against every problem of each
    BENCH:PATH in `against` (default: cfg.prompts.decontaminate_against). Writes clean.jsonl (the records kept, as
    given), report.json and manifest.json; a directory holding another run's is refused unless `overwrite`."""
    pcfg = cfg.prompts
    against = list(pcfg.decontaminate_against if against is None else against)
    out_dir = output_dir(out_dir)
    if not against:
        raise InputError("ssd decontaminate: give at least one --against BENCH:PATH")
    targets = [parse_target(a) for a in against]
    inputs = {"prompts": fingerprint_path(pcfg.path), **targets_fingerprint(targets)}
    settings = {"format": pcfg.format, "split": pcfg.split, "subset": pcfg.subset, "ngram": pcfg.ngram,
                "ngram_common": pcfg.ngram_common, "against": [t.describe() for t in targets]}
    st = Stage("decontaminate", out_dir, settings, inputs, work=("clean.jsonl", "report.json"))
    if st.finished():
        return st.manifest
    rows = read_problems(pcfg.path, pcfg.format, pcfg.split, pcfg.subset)
    st.lap("read")
    index = build_index(targets, pcfg.ngram, pcfg.ngram_common)
    st.lap("index")
    flagged = index.flag([p for _, _, p in rows])
    st.lap("flag")
    hit = {f["index"] for f in flagged}
    counts = counts_of(flagged, len(rows), index)
    st.claim(overwrite)
    st.write_jsonl("clean.jsonl", (rec for i, (_, rec, _) in enumerate(rows) if i not in hit))
    st.write_json("report.json", {"counts": counts, "settings": index.describe(), "flagged": flagged})
    return st.finish({k: v for k, v in counts.items() if k != "by_benchmark"},
                     extra={"by_benchmark": counts["by_benchmark"]})
