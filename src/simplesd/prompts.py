"""Problem sets and the paper's two prompt templates.

Loads problems from JSONL(.gz)/Parquet files or a `datasets` hub id, in three published formats:
- rStar-Coder seed problems: `question`, `starter_code` (empty for stdin problems);
- LiveCodeBench code_generation_lite: `question_id`, `question_content`, `starter_code`, ...;
- HumanEval: `task_id`, `prompt` (signature + docstring), `entry_point`.

The user turn is built with one of the paper's two templates (stdin/stdout problems vs starter-code
problems, as in LiveCodeBench and apple/ml-ssd) and then rendered with the model's own chat template.
Sampling and training both go through `user_prompt` and the same tokenizer chat template, so the model is
trained on exactly the context it sampled from.

`select_prompts` is the prompt set's hygiene before sampling: duplicates (exact, and equal up to case and
whitespace) dropped,
decontamination against benchmark problems (an index from `decontaminate`), a seeded stable shuffle, offset and
cap, with counts of each.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .io import InputError, read_jsonl

# The paper's templates (LiveCodeBench's code-generation prompts as used by apple/ml-ssd).
STDIN_TEMPLATE = (
    "You will be given a question (problem specification) and will generate a correct Python program that "
    "matches the specification and passes all tests. You will NOT return anything except for the program.\n\n"
    "Question: {question}\n\n"
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
    "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, "
    "it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
    "```python\n  # YOUR CODE HERE\n```"
)
STARTER_TEMPLATE = (
    "You will be given a question (problem specification) and will generate a correct Python program that "
    "matches the specification and passes all tests. You will NOT return anything except for the program.\n\n"
    "Question: {question}\n\n"
    "You will use the following starter code to write the solution to the problem and enclose your code within "
    "delimiters as follows.\n"
    "```python\n{starter_code}\n```"
)
HUMANEVAL_QUESTION = "Complete the Python function `{entry_point}` so that it does what its docstring says."

FORMATS = ("rstar", "livecodebench", "humaneval")
_ID_FIELDS = ("question_id", "task_id", "problem_id", "id")


@dataclass
class Problem:
    id: str
    question: str
    starter_code: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # difficulty, contest_date, entry_point, ... as given

    @property
    def kind(self) -> str:
        return "starter" if self.starter_code.strip() else "stdin"


def user_prompt(problem: Problem) -> str:
    """The user turn, before the chat template. Byte-identical in sampling and in train.jsonl."""
    if problem.kind == "starter":
        return STARTER_TEMPLATE.format(question=problem.question, starter_code=problem.starter_code)  # verbatim, as the reference does
    return STDIN_TEMPLATE.format(question=problem.question)


def chat_text(tokenizer, user_text: str) -> str:
    """The full generation context: the model's chat template with the generation prompt appended."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
    )


def detect_format(record: dict) -> str | None:
    if "question_content" in record:
        return "livecodebench"
    if "entry_point" in record and "prompt" in record:
        return "humaneval"
    if "question" in record:
        return "rstar"
    return None


def _get_str(where: str, record: dict, name: str, required: bool = True) -> str:
    if name not in record or record[name] is None:
        if required:
            raise InputError(f"{where}: missing field '{name}'")
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def problem_from_record(record: dict, fmt: str, where: str, index: int) -> Problem:
    pid = next((record[k] for k in _ID_FIELDS if record.get(k) not in (None, "")), None)
    pid = str(pid) if pid is not None else f"row-{index}"
    if fmt == "humaneval":
        entry = _get_str(where, record, "entry_point")
        code = _get_str(where, record, "prompt")
        if not code.strip():
            raise InputError(f"{where}: field 'prompt' is empty")
        return Problem(pid, HUMANEVAL_QUESTION.format(entry_point=entry), code, {"entry_point": entry})
    qfield = "question_content" if fmt == "livecodebench" else "question"
    question = _get_str(where, record, qfield)
    if not question.strip():
        raise InputError(f"{where}: field '{qfield}' is empty")
    starter = _get_str(where, record, "starter_code", required=False)
    meta = {k: record[k] for k in ("difficulty", "contest_date", "platform", "source") if k in record}
    return Problem(pid, question, starter, meta)


def _records(path: str, split: str, subset: str | None = None) -> Iterator[tuple[str, dict]]:
    """(location for error messages, record) from a local file or a `datasets` hub id."""
    p = Path(path)
    name = p.name.lower()
    if p.is_file() or name.endswith((".jsonl", ".jsonl.gz", ".json", ".parquet")):
        if name.endswith(".parquet"):
            if not p.is_file():
                raise InputError(f"{p}: problem file not found")
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(p)
            except Exception as e:  # pyarrow raises several types for a damaged file
                raise InputError(f"{p}: not a readable Parquet file ({e})") from None
            for i, row in enumerate(table.to_pylist()):
                yield f"{p}:row {i}", row
            return
        for lineno, rec in read_jsonl(p):
            yield f"{p}:{lineno}", rec
        return
    # a `datasets` hub id, or a local dataset folder (e.g. a clone of a hub dataset repo): datasets loads both
    import datasets

    try:
        ds = datasets.load_dataset(path, subset, split=split)
    except Exception as e:
        raise InputError(f"{path}: not a local file, and loading it as a datasets hub id failed: {str(e).splitlines()[0]}") from None
    for i, row in enumerate(ds):
        yield f"{path}{'/' + subset if subset else ''}[{split}]:row {i}", row


def read_problems(path: str, fmt: str = "auto", split: str = "train", subset: str | None = None) -> list[tuple[str, dict, Problem]]:
    """(location, record as given, Problem) for every record of a problem file or dataset, in its order."""
    if not path:
        raise InputError("no problem set given (set prompts.path or pass --prompts)")
    rows = []
    for i, (where, rec) in enumerate(_records(path, split, subset)):
        f = fmt if fmt != "auto" else detect_format(rec)
        if f is None:
            raise InputError(
                f"{where}: cannot tell the record format (expected 'question', 'question_content' or "
                f"'prompt'+'entry_point'); set prompts.format"
            )
        rows.append((where, rec, problem_from_record(rec, f, where, i)))
    if not rows:
        raise InputError(f"{path}: no problems found")
    return rows


def _check_unique_ids(rows) -> None:
    seen: dict[str, str] = {}
    for where, _, prob in rows:
        if prob.id in seen:
            raise InputError(f"{where}: duplicate problem id '{prob.id}' (first at {seen[prob.id]})")
        seen[prob.id] = where


def load_problems(path: str, fmt: str = "auto", split: str = "train", max_prompts: int | None = None,
                  subset: str | None = None, offset: int = 0) -> list[Problem]:
    """Problems in file order, ids unique; no dedup, no shuffle (benchmarks, analysis). Sampling goes through
    `select_prompts`."""
    rows = read_problems(path, fmt, split, subset)
    _check_unique_ids(rows)
    problems = [p for _, _, p in rows[offset:]][:max_prompts]
    if not problems:
        raise InputError(f"{path}: no problems found" + (f" after the first {offset} (prompts.offset)" if offset else ""))
    return problems


# ---------------------------------------------------------------------------------------------------------
# Prompt hygiene: what is compared, duplicates, the seeded shuffle, the cap


def statement(problem: Problem) -> str:
    """The problem's own text (not the template around it): question and starter code; for HumanEval-format
    records only the prompt, as the question is our fixed sentence."""
    if "entry_point" in problem.meta:
        return problem.starter_code
    return problem.question + ("\n" + problem.starter_code if problem.starter_code.strip() else "")


_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Lower-cased words: runs of letters and digits; whitespace, punctuation and underscores separate them."""
    return _WORD.findall(text.lower())


def normalised(text: str) -> str:
    """What two statements must share to be duplicates beyond exact equality: the text lower-cased with whitespace
    runs collapsed. Punctuation is kept: on code it is content (HumanEval/56 and /61 differ only in "<>" vs "()")."""
    return " ".join(text.lower().split())


def shuffle_key(seed: int, problem_id: str) -> str:
    """A problem's place in the seeded shuffle: depends on its id alone, so adding or reordering problems in the
    file does not move the others."""
    return hashlib.sha256(f"simplesd-shuffle:{seed}:{problem_id}".encode()).hexdigest()


@dataclass
class PromptSet:
    """The problems a sample run uses, and what happened to the rest (for prompts.json, manifests, the report)."""

    problems: list[Problem]
    records: list[dict]  # the input records of `problems`, as given
    counts: dict
    duplicates: list[dict]
    flagged: list[dict]
    checked_against: dict  # the decontamination index's settings and benchmarks; empty when not checked


def select_prompts(pcfg, index=None) -> PromptSet:
    """`prompts.*` applied in order: read every record; drop exact and normalised duplicates (prompts.dedup,
    first kept); drop problems the decontamination `index` flags (unless prompts.keep_contaminated); shuffle
    stably by seed (prompts.shuffle); skip prompts.offset; keep prompts.max_prompts. Empty at the end = error.
    Indices in the reports are positions in the input file."""
    rows = [(i, *row) for i, row in enumerate(read_problems(pcfg.path, pcfg.format, pcfg.split, pcfg.subset))]
    counts = {"read": len(rows)}
    duplicates: list[dict] = []
    if pcfg.dedup:
        exact: dict[str, str] = {}
        normal: dict[str, str] = {}
        kept = []
        for i, where, rec, prob in rows:
            text = statement(prob)
            norm = normalised(text)
            first, kind = (exact[text], "exact") if text in exact else (normal.get(norm), "normalised")
            if first is not None:
                duplicates.append({"index": i, "prompt_id": prob.id, "duplicate_of": first, "kind": kind})
                continue
            exact[text] = normal[norm] = prob.id
            kept.append((i, where, rec, prob))
        counts["exact_duplicates"] = sum(d["kind"] == "exact" for d in duplicates)
        counts["normalised_duplicates"] = sum(d["kind"] == "normalised" for d in duplicates)
        rows = kept
    _check_unique_ids([r[1:] for r in rows])
    flagged: list[dict] = []
    checked: dict = {}
    if index is not None:
        flagged = index.flag([r[3] for r in rows], [r[0] for r in rows])
        checked = index.describe()
        hit = {f["index"] for f in flagged}
        counts["contaminated"] = len(hit)
        counts["contaminated_kept"] = len(hit) if pcfg.keep_contaminated else 0
        if not pcfg.keep_contaminated:
            rows = [r for r in rows if r[0] not in hit]
    counts["clean"] = len(rows)
    if pcfg.shuffle:
        rows = sorted(rows, key=lambda r: shuffle_key(pcfg.seed, r[3].id))
    chosen = rows[pcfg.offset:][: pcfg.max_prompts]
    counts.update(offset=min(pcfg.offset, len(rows)), selected=len(chosen))
    if not chosen:
        raise InputError(f"{pcfg.path}: no prompts left to sample on ({prompt_story(counts)}); nothing would be trained")
    return PromptSet([r[3] for r in chosen], [r[2] for r in chosen], counts, duplicates, flagged, checked)


def prompt_story(counts: dict) -> str:
    """select_prompts' counts in one line: read, duplicates, contaminated, offset (and selected)."""
    parts = [f"{counts['read']} read"]
    dups = counts.get("exact_duplicates", 0) + counts.get("normalised_duplicates", 0)
    if dups:
        parts.append(f"{dups} duplicates dropped")
    if counts.get("contaminated"):
        parts.append(f"{counts['contaminated']} contaminated" + (" (kept)" if counts.get("contaminated_kept") else " dropped"))
    if counts.get("offset"):
        parts.append(f"{counts['offset']} skipped by prompts.offset")
    if "selected" in counts:
        parts.append(f"{counts['selected']} selected")
    return ", ".join(parts)
