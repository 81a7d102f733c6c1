"""The conversation a sample is drawn in, as text and as token ids, and what of a sample is its answer.

SSD trains the model on exactly what it generated: the token ids the sampler fed it (the chat template's rendering
of the context messages, generation prompt included) followed by the token ids it drew (the stop token included
when the sample ended by itself, none when it hit max_new_tokens). Both sampling backends go through `render`
and `encode`, record both id lists, and `ssd train` trains on them as they are (`train.token_rows`). Rendering
the conversation back through the template is not the same thing for the paper's own models: Qwen3-Instruct-2507's
template writes an empty `<think>\\n\\n</think>\\n\\n` before the last assistant turn, Qwen3-Thinking-2507's moves the
reasoning around `</think>` with its own newlines, Llama 3.1's trims every message.

A Thinking model's generation prompt opens a reasoning block (`<think>\\n`): its samples are `reasoning</think>answer`
and the answer, the part that is graded, is what follows the last `</think>` (`answer`).
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def context_messages(user: str, system: str | None = None) -> list[dict]:
    """The messages before the sample: an optional system prompt, then the user turn."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def render(tokenizer, messages: list[dict] | str) -> str:
    """The generation context as text: the chat template over `messages` (a user turn's text alone is one user
    message) with the generation prompt appended."""
    if isinstance(messages, str):
        messages = context_messages(messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Rendered contexts as the token ids the model is fed: the template already holds the special tokens it wants
    (Llama's <|begin_of_text|>), so none are added."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def decode(tokenizer, ids: list[int]) -> str:
    """A sample's text from its ids. Special tokens are dropped (Qwen's <think> and </think> are not special, so
    they stay); spaces are never "cleaned up" (Llama 3.1's tokenizer config asks for it, which would turn
    `print(a , b)` into `print(a, b)`: the graded program would not be the generated one)."""
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def opens_reasoning(tokenizer, messages: list[dict]) -> bool:
    """Whether the template's generation prompt opens a reasoning block the sample starts inside (Qwen3-Thinking's
    ends in `<think>\\n`): what the rendering with the generation prompt adds to the one without it."""
    with_prompt = render(tokenizer, messages)
    without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    added = with_prompt[len(without):] if with_prompt.startswith(without) else with_prompt[-64:]
    return added.rfind(THINK_OPEN) > added.rfind(THINK_CLOSE)


def reasoning_unclosed(output: str, thinking: bool) -> bool:
    """A sample that ends inside a reasoning block: it started in one (`thinking`) or opened one, and no
    `</think>` follows."""
    close = output.rfind(THINK_CLOSE)
    return (thinking and close < 0) or output.rfind(THINK_OPEN) > close


def answer(output: str, thinking: bool) -> str:
    """The part of a Thinking model's sample that is its answer: the text after the last `</think>`; nothing when
    the reasoning never closed (cut off by max_new_tokens, say). Other models' samples are their answer whole."""
    if not thinking:
        return output
    close = output.rfind(THINK_CLOSE)
    return "" if close < 0 else output[close + len(THINK_CLOSE):]
