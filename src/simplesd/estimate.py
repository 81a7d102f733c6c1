"""Back-of-the-envelope time and memory for an SSD run, from the model's shape and the token counts.

Every number comes from a formula written out below, with its assumptions printed next to it (`ssd estimate`).
They are planning numbers (right within a factor of about two), not measurements: measure with a short run
(`prompts.max_prompts=64`) and read the manifests' tokens/s.

- Parameters are counted from the architecture (embeddings, attention, MLP or routed experts, norms); a
  mixture-of-experts model's *active* parameters count only the experts each token is routed to.
- Sampling (vLLM, one replica per `tensor_parallel_size` GPUs) is modelled as a roofline: each decoding step
  reads the replica's weights once and the KV cache of every running sequence, and does 2 x active parameters
  FLOPs per token plus attention over the context; a step takes the longer of bytes / bandwidth and FLOPs /
  (peak x 50 %). Running sequences = min(256, KV-cache capacity / mean context), the KV cache being what is left
  of 90 % of GPU memory after the weights.
- Training FLOPs per token = 6 x active parameters + 12 x layers x context x attention width (forward and
  backward of causal attention), x 4/3 with gradient checkpointing (one more forward), at 40 % of peak.
- Training memory per GPU = weight states + activations + logits + 3 GB (CUDA context, buffers, fragmentation).
  Full fine-tuning keeps float32 weights, float32 gradients and AdamW's two float32 moments: 16 bytes per
  parameter, divided by the GPU count under FSDP/ZeRO-3. LoRA keeps the frozen base in bf16 (2 bytes per
  parameter; QLoRA 4-bit: 0.56) and small adapters. Activations per sequence of S tokens: with gradient
  checkpointing each layer's input (2 x S x hidden bytes) plus one layer's working set (34 x S x hidden bytes);
  without it, all layers' working sets. Logits: S x vocab x 10 bytes (bf16 logits, their float32 copy for the
  loss, its gradient) unless Liger's chunked cross-entropy never materialises them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import SSDConfig, reads
from .io import InputError

GPUS = {  # dense bf16 peak FLOP/s, memory bandwidth B/s, memory bytes (vendor data sheets, SXM parts)
    "h100": (989e12, 3.35e12, 80e9),
    "h200": (989e12, 4.8e12, 141e9),
    "a100": (312e12, 2.0e12, 80e9),
}


@dataclass
class Shape:
    """What the estimates need to know about a decoder-only transformer."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width, or each expert's width
    vocab: int
    tied_embeddings: bool
    experts: int = 0  # 0 = dense
    experts_per_token: int = 0
    qk_norm: bool = True  # RMSNorms on queries and keys (Qwen3; Llama has none)

    def params(self, active: bool = False) -> float:
        attn = self.hidden * self.heads * self.head_dim * 2 + self.hidden * self.kv_heads * self.head_dim * 2
        mlp_one = 3 * self.hidden * self.intermediate  # gate, up, down
        if self.experts:
            mlp = mlp_one * (self.experts_per_token if active else self.experts) + self.hidden * self.experts
        else:
            mlp = mlp_one
        norms = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)  # two RMSNorms (+ q/k norms)
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * (attn + mlp + norms) + embed + self.hidden

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


# The paper's models, from their config.json files (so the estimate works offline).
KNOWN = {
    "Qwen/Qwen3-4B-Instruct-2507": Shape(36, 2560, 32, 8, 128, 9728, 151936, True),
    "Qwen/Qwen3-4B-Thinking-2507": Shape(36, 2560, 32, 8, 128, 9728, 151936, True),
    "meta-llama/Llama-3.1-8B-Instruct": Shape(32, 4096, 32, 8, 128, 14336, 128256, False, qk_norm=False),
    "Qwen/Qwen3-30B-A3B-Instruct-2507": Shape(48, 2048, 32, 4, 128, 768, 151936, False, experts=128, experts_per_token=8),
}


QK_NORM_MODELS = ("qwen3", "qwen3_moe", "qwen3_next", "olmo2", "olmoe", "gemma3_text")  # model types with q/k RMSNorms


def shape_of(name_or_path: str, trust_remote_code: bool = False) -> Shape:
    """A known paper model, else read from the model's config.json (local directory or hub)."""
    if name_or_path in KNOWN:
        return KNOWN[name_or_path]
    from transformers import AutoConfig

    from .models import model_location

    model_location(name_or_path)  # a path that does not exist is said so (not a hub error)
    try:
        c = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise InputError(f"{name_or_path}: cannot read the model's config ({str(e).splitlines()[0]})") from None
    c = getattr(c, "text_config", c)
    heads = c.num_attention_heads
    experts = getattr(c, "num_experts", None) or getattr(c, "num_local_experts", None) or 0
    return Shape(
        layers=c.num_hidden_layers, hidden=c.hidden_size, heads=heads,
        kv_heads=getattr(c, "num_key_value_heads", None) or heads,
        head_dim=getattr(c, "head_dim", None) or c.hidden_size // heads,
        intermediate=(getattr(c, "moe_intermediate_size", None) if experts else None) or c.intermediate_size,
        vocab=c.vocab_size, tied_embeddings=bool(getattr(c, "tie_word_embeddings", False)), experts=experts,
        experts_per_token=getattr(c, "num_experts_per_tok", 0) or 0, qk_norm=c.model_type in QK_NORM_MODELS,
    )


@reads("model", "prompts", "sample", "filter", "train")
def estimate(cfg: SSDConfig, prompts: int, mean_sample_tokens: float, mean_prompt_tokens: float = 600,
             gpus: int = 8, gpu: str = "h100", shape: Shape | None = None) -> dict:
    """Time and memory for sampling `prompts` x sample.n samples and training on them, on `gpus` GPUs."""
    if gpu not in GPUS:
        raise InputError(f"--gpu: one of {', '.join(GPUS)}, got {gpu!r}")
    peak, bandwidth, memory = GPUS[gpu]
    sh = shape or shape_of(cfg.model.name_or_path, cfg.model.trust_remote_code)
    total, active = sh.params(), sh.params(active=True)
    s, t = cfg.sample, cfg.train
    samples = prompts * s.n
    gen_tokens = samples * mean_sample_tokens
    attn_width = sh.heads * sh.head_dim

    # sampling: roofline per replica
    tp = s.tensor_parallel_size * s.pipeline_parallel_size
    replicas = max(1, gpus // tp)
    weights = 2 * total
    kv_room = 0.9 * memory * tp - weights
    if kv_room <= 0:
        raise InputError(f"{cfg.model.name_or_path}: {weights / 1e9:.0f} GB of bf16 weights do not fit "
                         f"{tp} x {gpu} (raise sample.tensor_parallel_size)")
    mean_context = mean_prompt_tokens + mean_sample_tokens / 2
    kv_per_seq = sh.kv_bytes_per_token() * mean_context
    running = max(1, min(256, int(kv_room / kv_per_seq)))
    step_bytes = weights + running * kv_per_seq
    step_flops = running * (2 * active + 4 * sh.layers * mean_context * attn_width)
    step_s = max(step_bytes / (bandwidth * tp), step_flops / (peak * tp * 0.5))
    sample_tps = running / step_s * replicas
    sample_hours = gen_tokens / sample_tps / 3600

    # training
    kept = samples * (1 - cfg.filter.drop_shortest_fraction) * (1 - cfg.filter.holdout_fraction)
    seq = min(mean_prompt_tokens + mean_sample_tokens, t.max_seq_length)
    train_tokens = kept * seq * t.epochs
    flops_per_token = (6 * active + 12 * sh.layers * seq / 2 * attn_width) * (4 / 3 if t.gradient_checkpointing else 1)
    train_hours = train_tokens * flops_per_token / (peak * gpus * 0.4) / 3600
    longest = t.max_seq_length
    if t.lora.enabled:
        states = (0.56 if t.lora.load_in_4bit else 2.0) * total
        how = "QLoRA 4-bit base" if t.lora.load_in_4bit else "LoRA, bf16 base"
    else:
        states = 16.0 * total / gpus
        how = f"full fine-tuning, 16 B/param sharded over {gpus} GPUs (FSDP/ZeRO-3)"
    layer_work = 34 * longest * sh.hidden * t.per_device_batch_size
    acts = (sh.layers * 2 * longest * sh.hidden * t.per_device_batch_size + layer_work) if t.gradient_checkpointing \
        else sh.layers * layer_work
    logits = 0 if t.use_liger_kernel else 10 * longest * sh.vocab * t.per_device_batch_size
    train_mem = states + acts + logits + 3e9
    return {
        "model": cfg.model.name_or_path, "gpus": f"{gpus} x {gpu}",
        "parameters_b": round(total / 1e9, 2), "active_parameters_b": round(active / 1e9, 2),
        "samples": samples, "generated_tokens_m": round(gen_tokens / 1e6, 1),
        "sampling": {"replicas": replicas, "gpus_per_replica": tp, "running_sequences": running,
                     "tokens_per_s": round(sample_tps), "hours": round(sample_hours, 3),
                     "memory_gb_per_gpu": round(0.9 * memory / 1e9)},
        "training": {"tokens_m": round(train_tokens / 1e6, 1), "hours": round(train_hours, 3), "states": how,
                     "tokens_per_s": round(peak * gpus * 0.4 / flops_per_token), "flops_per_token": flops_per_token,
                     "memory_gb_per_gpu": round(train_mem / 1e9, 1),
                     "parts_gb": {"weights_grads_optimizer": round(states / 1e9, 1), "activations": round(acts / 1e9, 1),
                                  "logits": round(logits / 1e9, 1), "overhead": 3.0},
                     "fits": train_mem <= memory},
        "assumptions": {"mean_prompt_tokens": mean_prompt_tokens, "mean_sample_tokens": mean_sample_tokens,
                        "longest_training_sequence": longest, "sampling_efficiency": 0.5, "training_mfu": 0.4},
    }


def format_estimate(e: dict) -> str:
    sm, tr = e["sampling"], e["training"]
    a = e["assumptions"]
    parts = ", ".join(f"{k.replace('_', ' ')} {v} GB" for k, v in tr["parts_gb"].items())
    return "\n".join([
        f"{e['model']} on {e['gpus']}: {e['parameters_b']} B parameters ({e['active_parameters_b']} B active)",
        f"  sampling  {e['samples']:,} samples x {a['mean_sample_tokens']:,.0f} tokens = {e['generated_tokens_m']:,} M tokens: "
        f"{sm['replicas']} replica(s) x {sm['gpus_per_replica']} GPU, ~{sm['running_sequences']} sequences running, "
        f"~{sm['tokens_per_s']:,} tokens/s -> {sm['hours']:.1f} h",
        f"  training  {tr['tokens_m']:,} M tokens -> {tr['hours']:.1f} h; {tr['states']}; "
        f"{tr['memory_gb_per_gpu']} GB per GPU at {a['longest_training_sequence']:,} tokens ({parts})"
        + ("" if tr["fits"] else "  ** does not fit: more GPUs, LoRA, gradient checkpointing or Liger **"),
    ])


def mean_sample_tokens_from(sample_dir) -> float:
    """Mean completion length of a finished `ssd sample` run (its manifest)."""
    from pathlib import Path

    from .io import read_json

    m = read_json(Path(sample_dir) / "manifest.json")
    return m["counts"]["completion_tokens"] / max(1, m["counts"]["samples"])
