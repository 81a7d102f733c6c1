"""A tiny real causal LM built offline: a byte-level BPE tokenizer trained with `tokenizers` on local text,
with a ChatML chat template, and a randomly initialised transformers `LlamaForCausalLM` (head_dim 64, so vLLM
has kernels for it). Tests, benchmarks and the pipeline demo run every stage on it for real.

The weights are random: what it writes is noise. It exists to exercise the pipeline, not to code.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..prompts import STARTER_TEMPLATE, STDIN_TEMPLATE

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CODE = """\
import sys
from typing import List

def main():
    data = sys.stdin.read().split()
    n = int(data[0])
    total = 0
    for i in range(1, n + 1):
        total += i
    print(total)

if __name__ == "__main__":
    main()

class Solution:
    def solve(self, nums: List[int]) -> int:
        result = 0
        for x in nums:
            if x % 2 == 0:
                result += x
        return result

    def check(self, s: str) -> bool:
        stack = []
        for ch in s:
            if ch in "([{":
                stack.append(ch)
            elif not stack:
                return False
            else:
                stack.pop()
        return not stack

values = sorted(int(x) for x in input().split())
print(" ".join(map(str, values)))
print("Yes" if s == s[::-1] else "No")
"""


def demo_problems_path() -> Path:
    return Path(str(resources.files("simplesd.testbed") / "demo_problems.jsonl"))


def corpus() -> list[str]:
    """Local text the tokenizer learns from: the paper's templates, the demo problems and some Python."""
    lines = [STDIN_TEMPLATE, STARTER_TEMPLATE, _CODE]
    with open(demo_problems_path(), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            lines += [rec["question"], rec["starter_code"]]
    return lines * 4


def build_tokenizer(vocab_size: int = 1024, texts: list[str] | None = None, phrases: bool = False):
    """Byte-level BPE with a ChatML template, trained on `texts` (default: the built-in local corpus).

    `phrases`: merges may cross spaces (up to 24 bytes, never past a line end) while every digit stays its own
    token, so a narrow domain's fixed phrases become single tokens and numbers are copied digit by digit (the
    testbed's base). Ending tokens at line ends keeps the generation prompt a token prefix of every training
    text: no token spans the boundary between the prompt and the response."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if phrases:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("\n", behavior="merged_with_previous"),  # a line end ends a token: the chat
            pre_tokenizers.Digits(individual_digits=True),                 # template's "assistant\n" included
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False, max_token_length=24 if phrases else None,
    )
    tok.train_from_iterator(texts if texts is not None else corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token=None,
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    head_dim: int = 64,
    intermediate_size: int = 256,
    vocab_size: int = 1024,
    max_position_embeddings: int = 2048,
    tokenizer=None,
) -> Path:
    """Writes a tokenizer (built here unless given) + random-weight Llama to out_dir (deterministic for a
    seed) and returns the path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = tokenizer or build_tokenizer(vocab_size)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[eos], pad_token_id=tokenizer.pad_token_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
