"""The records stages hand each other, typed: one sample (`ssd sample`'s shards, read by filter, evaluate, analyze)
and one verdict (`verdicts.jsonl`). Each is written as a JSON object with its fields in this order and read back
with every required field checked (a bad record is one InputError naming file:line and the field)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .io import InputError


@dataclass
class SampleRecord:
    """One sample: the problem's user turn, the model's output and why it ended, with its flags."""

    prompt_id: str
    sample_index: int
    prompt: str  # the user turn, before the chat template (train.jsonl's user message, byte for byte)
    output: str  # the text up to the first stop token
    finish_reason: str  # stop (the model ended it) | length (it hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int  # the stop token counts
    truncated: bool = False
    looping: bool = False
    has_code: bool = False
    has_think: bool = False
    seed: int | None = None  # sample_seed(sample.seed, prompt_id, sample_index)
    shard: int | None = None
    kind: str = ""  # stdin | starter
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, where: str, rec: dict) -> SampleRecord:
        """A record another tool may have written: prompt_id, prompt, output and completion_tokens are required;
        the flags, when missing, are computed from the text (`sampling.flags.sample_flags`)."""
        from .sampling.flags import FLAGS, sample_flags

        for name, tp in REQUIRED_SAMPLE_FIELDS.items():
            if name not in rec:
                raise InputError(f"{where}: missing field '{name}'")
            if not isinstance(rec[name], tp) or isinstance(rec[name], bool):
                raise InputError(f"{where}: field '{name}' must be {tp.__name__}, got {type(rec[name]).__name__}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in rec.items() if k in known}
        values.setdefault("sample_index", 0)
        values.setdefault("finish_reason", "stop")
        values.setdefault("prompt_tokens", 0)
        if any(f not in rec for f in FLAGS):
            values.update(sample_flags(values["output"], values["finish_reason"]))
        return cls(**values)


REQUIRED_SAMPLE_FIELDS = {"prompt_id": str, "prompt": str, "output": str, "completion_tokens": int}


@dataclass
class Verdict:
    """One graded response: `index` is its sample index among the task's responses, in input order."""

    task_id: str
    index: int
    verdict: str = "no_code"  # passed | failed | timeout | runtime_error | memory | no_code | ...
    tests_passed: int = 0
    tests_total: int = 0
    seconds: float = 0.0
    detail: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        if d["detail"] is None:
            del d["detail"]
        return d

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @classmethod
    def from_json(cls, where: str, rec: dict) -> Verdict:
        for name, tp in (("task_id", str), ("verdict", str)):
            if not isinstance(rec.get(name), tp):
                raise InputError(f"{where}: missing or non-string field '{name}'")
        known = {f.name for f in fields(cls)}
        return cls(**{"index": 0, **{k: v for k, v in rec.items() if k in known}})
