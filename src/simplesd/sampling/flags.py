"""What a sample is, for counting and optional filtering: truncated, looping, has_code, has_think, reasoning_unclosed. Both sampling
backends flag every record here; `ssd filter` computes the flags for records another tool wrote without them."""

from __future__ import annotations

import re

# A sample loops when its last tokens are one unit of at most LOOP_MAX_PERIOD tokens repeated at least
# LOOP_MIN_REPEATS times over at least LOOP_MIN_TOKENS tokens (e.g. the same line again and again up to the cap).
LOOP_MAX_PERIOD, LOOP_MIN_REPEATS, LOOP_MIN_TOKENS = 100, 4, 32
THINK = re.compile(r"</?think>")
FLAGS = ("truncated", "looping", "has_code", "has_think", "reasoning_unclosed")


def looping(seq, max_period: int = LOOP_MAX_PERIOD, min_repeats: int = LOOP_MIN_REPEATS, min_span: int = LOOP_MIN_TOKENS) -> bool:
    """Whether `seq` (tokens, or characters) ends in a unit repeated min_repeats+ times over min_span+ items."""
    n = len(seq)
    for period in range(1, max_period + 1):
        span = max(period * min_repeats, min_span)
        if span > n:
            break
        tail = seq[n - span:]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return True
    return False


def sample_flags(output: str, finish_reason: str, tokens=None, thinking: bool = False) -> dict:
    """What a sample is, for counting and optional filtering: `truncated` (hit max_new_tokens without a stop
    token), `looping` (ends in a repeated unit: over its tokens, or its characters x4 when only text is known),
    `has_code` (a fenced block the grader would run, in the answer: a Thinking model's is after </think>),
    `has_think` (a reasoning block: <think> or </think>), `reasoning_unclosed` (it ends inside one: `thinking`, the
    generation prompt opened it, or the sample did, and no </think> follows)."""
    from ..chat import answer, reasoning_unclosed
    from ..execute.rules import extract_code

    loops = looping(tokens) if tokens is not None else looping(output, 4 * LOOP_MAX_PERIOD, LOOP_MIN_REPEATS, 4 * LOOP_MIN_TOKENS)
    return {"truncated": finish_reason == "length", "looping": loops,
            "has_code": extract_code(answer(output, thinking)) is not None, "has_think": THINK.search(output) is not None,
            "reasoning_unclosed": reasoning_unclosed(output, thinking)}
