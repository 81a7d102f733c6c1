"""The records stages hand each other, typed: one sample (`ssd sample`'s shards, read by filter, evaluate, analyze)
and one verdict (`verdicts.jsonl`). Each is written as a JSON object with its fields in this order and read back
with every required field checked (a bad record is one InputError naming file:line and the field)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .io import InputError


@dataclass
class SampleRecord:
    """One sample: the problem's user turn, the model's output and why it ended, with its flags, and the token ids
    the model was fed and drew (what `ssd train` trains on)."""

    prompt_id: str
    sample_index: int
    prompt: str  # the user turn, before the chat template (train.jsonl's user message, byte for byte)
    output: str  # the text up to the first stop token (chat.decode of the drawn ids)
    finish_reason: str  # stop (the model ended it) | length (it hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int  # the stop token counts
    truncated: bool = False
    looping: bool = False
    has_code: bool = False  # in the answer (a Thinking model's: after </think>)
    has_think: bool = False
    reasoning_unclosed: bool = False  # it ends inside a reasoning block (no </think> after it started or opened one)
    thinking: bool = False  # the generation prompt opened a reasoning block (Qwen3-Thinking's `<think>\n`)
    seed: int | None = None  # sample_seed(sample.seed, prompt_id, sample_index)
    shard: int | None = None
    kind: str = ""  # stdin | starter | chat
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[dict] | None = None  # the context messages, when more than the user turn (a system prompt, a chat row)
    prompt_token_ids: list[int] | None = None  # the rendered context as fed to the model
    completion_token_ids: list[int] | None = None  # as drawn: the stop token last when finish_reason is stop

    def to_json(self) -> dict:
        d = asdict(self)
        if d["messages"] is None:
            del d["messages"]
        return d

    def context(self) -> list[dict]:
        """The messages the sample was drawn after."""
        return self.messages or [{"role": "user", "content": self.prompt}]

    @property
    def token_exact(self) -> bool:
        return self.prompt_token_ids is not None and self.completion_token_ids is not None

    @classmethod
    def from_json(cls, where: str, rec: dict) -> SampleRecord:
        """A record another tool may have written: prompt_id, prompt, output and completion_tokens are required;
        the flags it lacks are computed from the text (`sampling.flags.sample_flags`); token ids are optional."""
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
        for name in ("prompt_token_ids", "completion_token_ids"):
            ids = values.get(name)
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                                                          and t >= 0 for t in ids)):
                raise InputError(f"{where}: field '{name}' must be a list of token ids (non-negative integers)")
        if values.get("messages") is not None and not (
                isinstance(values["messages"], list) and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                             and isinstance(m.get("role"), str) for m in values["messages"])):
            raise InputError(f"{where}: field 'messages' must be a list of chat messages (role, content)")
        missing = [f for f in FLAGS if f not in rec]
        if missing:  # computed from the text; the flags the record has are kept
            computed = sample_flags(values["output"], values["finish_reason"], thinking=bool(values.get("thinking")))
            values.update({f: computed[f] for f in missing})
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
    base_verdict: str | None = None  # EvalPlus: the verdict on the base inputs alone (`verdict` is base + plus)

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("detail", "base_verdict"):
            if d[key] is None:
                del d[key]
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
