"""The no-training control: a decoding rule that samples what a model which learned SSD's training distribution
exactly would sample (`sample.decoding` / `eval.decoding` = ssd_equivalent).

SSD trains on samples drawn at T_train, cut to the top-k / top-p support chosen at T_train. A model that learned
that distribution perfectly has, at each position, the base's logits / T_train on that support and nothing
outside it; decoding it at T_eval then draws from

    softmax(logits / (T_train * T_eval)) restricted to support(T_train, top-k, top-p), then eval's top-k / top-p

which anyone can apply to the base without training (truncation decoupled from temperature). If SSD equals
it, training taught nothing this rule could not; if SSD beats it, SSD learned something that generalises.

`ControlSupport` is that first step as a logits processor: it computes the support with transformers' own
warpers (`sampling_support`: temperature, top-k, top-p, the code that draws SSD's training samples), sets every
other logit to -inf and divides the rest by T_train. The sampler's ordinary warpers (T_eval, eval's top-k/top-p)
follow it: `SeededDraw` puts it first; for greedy decoding it is generate's only processor, and the argmax never
changes (the top token is always in the support; tested). `sampling/vllm_control.py` applies the same processor
in vLLM's engine, before vLLM's temperature.
"""

from __future__ import annotations


def sampling_support(logits, temperature: float, top_k: int, top_p: float, min_p: float = 0.0):
    """Boolean mask of the tokens the sampler can draw: transformers' own warpers, in generate()'s order (what
    `ssd analyze` measures tail mass against, and what the control keeps)."""
    import math

    import torch
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    if temperature == 0:  # greedy: the arg-max alone
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).bool()
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k > 0:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    if min_p > 0:
        scores = MinPLogitsWarper(min_p)(None, scores)
    return scores > -math.inf


class ControlSupport:
    """A logits processor: logits -> logits / T_train on the tokens sampling at (T_train, top-k, top-p) could
    draw, -inf elsewhere."""

    def __init__(self, temperature: float, top_k: int, top_p: float):
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)

    def __call__(self, input_ids, scores):
        keep = sampling_support(scores, self.temperature, self.top_k, self.top_p)
        return (scores / self.temperature).masked_fill(~keep, float("-inf"))


def describe(control: tuple[float, int, float] | None) -> str:
    """One line for consoles and reports: what the control mirrors."""
    if control is None:
        return "plain decoding"
    t, k, p = control
    return f"ssd_equivalent (support of T {t:g}, top-k {k or 'off'}, top-p {p:g})"
