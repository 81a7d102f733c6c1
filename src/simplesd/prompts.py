"""Problem sets and the paper's two prompt templates.

Loads problems from JSONL(.gz)/Parquet files or a `datasets` hub id, in three published formats and a chat one:
- rStar-Coder seed problems: `question`, `starter_code` (empty for stdin problems);
- LiveCodeBench code_generation_lite: `question_id`, `question_content`, `starter_code`, ...;
- HumanEval: `task_id`, `prompt` (signature + docstring), `entry_point`;
- chat rows: `messages`, the conversation before the answer (system, user and assistant turns, ending with a user
  turn), used as they are.
A user's own records with other field names map onto these with `prompts.fields` (`prompts.fields.question=problem`).

The user turn is built with one of the paper's two templates (stdin/stdout problems vs starter-code
problems, as in LiveCodeBench and apple/ml-ssd); with `prompts.system_prompt`, a system turn goes before it
(`context`). The model's own chat template renders those messages (`chat.render`); the sampler records the
token ids it fed the model, and training uses those ids (`chat`), so the model is trained on exactly the context
it sampled from.

`select_prompts` is the prompt set's hygiene before sampling: duplicates (exact, and equal up to case and
whitespace) dropped,
decontamination against benchmark problems (an index from `decontaminate`), a seeded stable shuffle, offset and
cap, with counts of each.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .chat import context_messages
from .io import InputError, read_jsonl

log = logging.getLogger(__name__)

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
# MBPP as it is usually prompted (Austin et al. 2021): the task, then the tests its code must pass
MBPP_QUESTION = "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}"

FORMATS = ("rstar", "livecodebench", "humaneval", "mbpp", "codecontests", "custom", "messages")
_ID_FIELDS = ("question_id", "task_id", "problem_id", "id")


@dataclass
class Problem:
    """One coding problem, whichever file it came from: the statement a prompt is built from (training prompts and
    benchmarks alike) and, for a benchmark, what grading needs (`execute.benchmarks` fills those fields)."""

    id: str
    question: str = ""  # the statement the prompt quotes
    starter_code: str = ""  # LiveCodeBench/LeetCode starter code; for HumanEval its prompt (signature + docstring)
    meta: dict[str, Any] = field(default_factory=dict)  # difficulty, contest_date, entry_point, ... as given
    # grading (benchmarks only)
    benchmark: str = ""  # livecodebench | humaneval ("" for a training prompt)
    difficulty: str | None = None
    contest_date: str | None = None
    tests: list[dict] = field(default_factory=list)  # LiveCodeBench: {"input", "output", "testtype"}
    fn_name: str = ""  # LiveCodeBench call-based problems
    entry_point: str = ""  # HumanEval
    test: str = ""  # HumanEval's check program
    canonical_solution: str = ""
    raw: dict = field(default_factory=dict, repr=False)  # the record as published
    messages: list[dict] = field(default_factory=list)  # a chat row's conversation, used as it is

    @property
    def kind(self) -> str:
        return "starter" if self.starter_code.strip() else "stdin"

    @property
    def task_id(self) -> str:  # the benchmarks' name for the id
        return self.id

    @property
    def prompt(self) -> str:  # HumanEval's name for its starter code
        return self.starter_code


def user_prompt(problem: Problem) -> str:
    """The user turn, before the chat template. Byte-identical in sampling and in train.jsonl."""
    if problem.messages:
        return problem.messages[-1]["content"]
    if problem.meta.get("tests_shown"):  # MBPP: the task and the tests its code must pass
        return MBPP_QUESTION.format(text=problem.question, tests="\n".join(problem.meta["tests_shown"]))
    if problem.kind == "starter":
        return STARTER_TEMPLATE.format(question=problem.question, starter_code=problem.starter_code)  # verbatim, as the reference does
    return STDIN_TEMPLATE.format(question=problem.question)


def context(problem: Problem, system_prompt: str | None = None) -> list[dict]:
    """The messages a sample of `problem` is drawn after: a chat row's own conversation (the system prompt goes first
    when it has none), else the system prompt, if any, and the user turn."""
    if problem.messages:
        has_system = problem.messages[0]["role"] == "system"
        return ([] if has_system or not system_prompt else [{"role": "system", "content": system_prompt}]) + problem.messages
    return context_messages(user_prompt(problem), system_prompt)


def detect_format(record: dict) -> str | None:
    if "messages" in record:
        return "messages"
    if isinstance(record.get("tests"), list) or isinstance(record.get("check"), str):
        return "custom"
    if "test_list" in record and ("text" in record or "prompt" in record) and "entry_point" not in record:
        return "mbpp"
    if "problem" in record and isinstance(record.get("tests"), dict):
        return "codecontests"
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


def _messages(where: str, record: dict) -> list[dict]:
    msgs = record.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InputError(f"{where}: field 'messages' must be a non-empty list of chat messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise InputError(f"{where}: field 'messages[{i}].role' must be system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise InputError(f"{where}: field 'messages[{i}].content' must be a string")
        if m["role"] == "system" and i:
            raise InputError(f"{where}: field 'messages[{i}].role': a system message can only come first")
    if msgs[-1]["role"] != "user" or not msgs[-1]["content"].strip():
        raise InputError(f"{where}: field 'messages': the last message must be a non-empty user turn (the model answers it)")
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def map_fields(record: dict, fields: dict[str, str], where: str) -> dict:
    """A user's record with `prompts.fields` applied: each of our field names takes the value of the record's field
    it is mapped to (`{"question": "problem"}`: the record's `problem` is the question)."""
    if not fields:
        return record
    out = dict(record)
    for ours, theirs in fields.items():
        if theirs not in record:
            raise InputError(f"{where}: missing field '{theirs}' (prompts.fields.{ours}={theirs})")
        out[ours] = record[theirs]
        if ours == "id":  # the mapped id wins over the record's other id-like fields
            out = {"id": record[theirs], **{k: v for k, v in out.items() if k not in _ID_FIELDS}}
    return out


def problem_from_record(record: dict, fmt: str, where: str, index: int) -> Problem:
    pid = next((record[k] for k in _ID_FIELDS if record.get(k) not in (None, "")), None)
    pid = str(pid) if pid is not None else f"row-{index}"
    if fmt == "messages":
        msgs = _messages(where, record)
        return Problem(pid, msgs[-1]["content"], "", {}, messages=msgs)
    if fmt == "mbpp":  # the original set's `text`, the sanitized subset's `prompt`
        text = _get_str(where, record, "text" if "text" in record else "prompt")
        tests = record.get("test_list")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise InputError(f"{where}: field 'test_list' must be a non-empty list of assert statements")
        return Problem(pid, text.strip(), "", {"tests_shown": tests})
    if fmt == "codecontests":
        question = _get_str(where, record, "problem" if "problem" in record else "description")
        if not question.strip():
            raise InputError(f"{where}: field 'problem' is empty")
        return Problem(pid if pid != f"row-{index}" else str(record.get("name") or pid), question.strip(), "", {})
    if fmt == "custom":  # users' own tests (execute/benchmarks.py): a question, optionally starter code
        question = _get_str(where, record, "question" if "question" in record else "prompt")
        if not question.strip():
            raise InputError(f"{where}: field 'question' is empty")
        return Problem(pid, question, _get_str(where, record, "starter_code", required=False), {})
    if fmt == "humaneval":
        entry = _get_str(where, record, "entry_point")
        code = _get_str(where, record, "prompt")
        if not code.strip():
            raise InputError(f"{where}: field 'prompt' is empty")
        return Problem(pid, HUMANEVAL_QUESTION.format(entry_point=entry), code, {"entry_point": entry}, entry_point=entry)
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


class ProblemRow(NamedTuple):
    """One record of a problem file: where it is (for errors), the record as given, and its Problem."""

    where: str
    record: dict
    problem: Problem


def read_problems(path: str, fmt: str = "auto", split: str = "train", subset: str | None = None,
                  fields: dict[str, str] | None = None) -> list[ProblemRow]:
    """Every record of a problem file or dataset, in its order (`fields`: prompts.fields, applied first)."""
    if not path:
        raise InputError("no problem set given (set prompts.path or pass --prompts)")
    rows = []
    for i, (where, rec) in enumerate(_records(path, split, subset)):
        rec = map_fields(rec, fields or {}, where)
        f = fmt if fmt != "auto" else detect_format(rec)
        if f is None:
            raise InputError(
                f"{where}: cannot tell the record format (expected 'question', 'question_content', "
                f"'prompt'+'entry_point' or 'messages'); set prompts.format, or map your fields with "
                f"prompts.fields (e.g. prompts.fields.question=problem)"
            )
        rows.append(ProblemRow(where, rec, problem_from_record(rec, f, where, i)))
    if not rows:
        raise InputError(f"{path}: no problems found")
    return rows


def _check_unique_ids(rows: list[ProblemRow]) -> None:
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
    records only the prompt, as the question is our fixed sentence; for a chat row its whole conversation."""
    if problem.messages:
        return "\n".join(m["content"] for m in problem.messages)
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
    # (position in the file, row): the position is what the reports name
    rows = list(enumerate(read_problems(pcfg.path, pcfg.format, pcfg.split, pcfg.subset, pcfg.fields)))
    counts = {"read": len(rows)}
    duplicates: list[dict] = []
    if pcfg.dedup:
        exact: dict[str, str] = {}
        normal: dict[str, str] = {}
        kept = []
        for i, row in rows:
            prob = row.problem
            text = statement(prob)
            norm = normalised(text)
            first, kind = (exact[text], "exact") if text in exact else (normal.get(norm), "normalised")
            if first is not None:
                duplicates.append({"index": i, "prompt_id": prob.id, "duplicate_of": first, "kind": kind})
                continue
            exact[text] = normal[norm] = prob.id
            kept.append((i, row))
        counts["exact_duplicates"] = sum(d["kind"] == "exact" for d in duplicates)
        counts["normalised_duplicates"] = sum(d["kind"] == "normalised" for d in duplicates)
        rows = kept
    _check_unique_ids([row for _, row in rows])
    flagged: list[dict] = []
    checked: dict = {}
    if index is not None:
        flagged = index.flag([row.problem for _, row in rows], [i for i, _ in rows])
        checked = index.describe()
        hit = {f["index"] for f in flagged}
        counts["contaminated"] = len(hit)
        counts["contaminated_kept"] = len(hit) if pcfg.keep_contaminated else 0
        if not pcfg.keep_contaminated:
            rows = [(i, row) for i, row in rows if i not in hit]
    counts["clean"] = len(rows)
    if pcfg.shuffle:
        rows = sorted(rows, key=lambda r: shuffle_key(pcfg.seed, r[1].problem.id))
    chosen = rows[pcfg.offset:][: pcfg.max_prompts]
    counts.update(offset=min(pcfg.offset, len(rows)), selected=len(chosen))
    if not chosen:
        raise InputError(f"{pcfg.path}: no prompts left to sample on ({prompt_story(counts)}); nothing would be trained")
    return PromptSet([row.problem for _, row in chosen], [row.record for _, row in chosen], counts, duplicates,
                     flagged, checked)


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


# ---------------------------------------------------------------------------------------------------------
# Preparing a run's prompts (`ssd sample`)

MAX_LISTED = 1000  # duplicates listed by name in prompts.json (all are counted)


def prepare_prompts(cfg):
    """The problems to sample on (`prompts.select_prompts`, decontaminated against `run_targets`), and the report of
    what was dropped and why (written to prompts.json)."""
    from .decontaminate import build_index, counts_of, run_targets

    targets = run_targets(cfg)
    index = build_index(targets, cfg.prompts.ngram, cfg.prompts.ngram_common) if targets else None
    ps = select_prompts(cfg.prompts, index)
    # rStar-Coder's seed_sft repeats each problem once per solution: hundreds of thousands of duplicates
    report = {"counts": ps.counts, "duplicates": ps.duplicates[:MAX_LISTED],
              "duplicates_listed": f"{min(len(ps.duplicates), MAX_LISTED)} of {len(ps.duplicates)}"}
    if index is not None:
        report["decontamination"] = {"counts": counts_of(ps.flagged, ps.counts["read"] - len(ps.duplicates), index),
                                     "settings": ps.checked_against, "flagged": ps.flagged,
                                     "action": "kept (prompts.keep_contaminated)" if cfg.prompts.keep_contaminated else "dropped"}
    else:
        why = "prompts.decontaminate is off" if not cfg.prompts.decontaminate else "no benchmark configured (eval.benchmark, prompts.decontaminate_against)"
        report["decontamination"] = {"checked": False, "why": why}
    return ps, report


def log_contamination(cfg, ps, where: Path) -> None:
    c = ps.counts
    if c.get("contaminated"):
        names = ", ".join(sorted({f"{f['benchmark']} {f['task_id']}" for f in ps.flagged})[:5])
        msg = (f"{c['contaminated']} of {c['read']} prompts overlap benchmark problems ({names}{', ...' if len(ps.flagged) > 5 else ''}); ")
        if cfg.prompts.keep_contaminated:
            log.warning("WARNING: %sKEPT because prompts.keep_contaminated=true: evaluation on those problems is "
                        "contaminated. See %s", msg, where)
        else:
            log.info("sample: %sdropped (see %s)", msg, where)
