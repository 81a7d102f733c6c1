import json
import shutil

import pytest
from conftest import ssd, train_config, write_train_file

from simplesd.io import InputError
from simplesd.train import build_trainer, train


def test_loss_on_assistant_tokens_and_eos_only(tmp_path, tiny_model):
    data = write_train_file(tmp_path / "train.jsonl", 2)
    trainer, tok, accum, _ = build_trainer(train_config(tiny_model), data, tmp_path / "out", progress=False)
    assert accum == 2  # effective 4 = 2 per device x 2 accumulation steps
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    prompt = tok.apply_chat_template([{"role": "user", "content": "Write f0, adding 0."}], tokenize=False,
                                     add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt  # every user/prompt token masked
    assert labels[n_prompt:] == ids[n_prompt:]  # every assistant token trained...
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    assert ids[n_prompt:].count(eos) == 1 and eos in labels  # ...including the end-of-turn EOS
    completion = tok.decode(ids[n_prompt:])
    assert completion.startswith("```python\ndef f0(x):") and completion.rstrip("\n").endswith("<|im_end|>")


def test_training_loss_falls_and_model_loads(tmp_path, tiny_model):
    data = write_train_file(tmp_path / "train.jsonl")
    m = train(train_config(tiny_model, epochs=10), data, tmp_path / "out", progress=False)
    c = m["counts"]
    assert c["optimizer_steps"] == 40 and c["examples"] == 16
    hist = [h for h in json.loads((tmp_path / "out" / "log_history.json").read_text()) if "loss" in h]
    assert len(hist) == 40 and all(h["tokens_per_second"] > 0 for h in hist[1:])
    assert c["final_loss"] < 0.3 * c["first_loss"], (c["first_loss"], c["final_loss"])
    assert list((tmp_path / "out" / "tensorboard").rglob("events.out.tfevents.*"))
    assert m["config"]["train"]["learning_rate"] == 3e-3 and m["environment"]["packages"]["trl"]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    assert tok.chat_template and model.generation_config.eos_token_id == [tok.convert_tokens_to_ids("<|im_end|>")]
    # it learned its data: greedy decoding reproduces a training answer's start
    prompt = tok.apply_chat_template([{"role": "user", "content": "Write f3, adding 3."}], tokenize=False,
                                     add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:])
    assert text.startswith("```python\ndef f"), text


def test_resume_from_checkpoint_matches_uninterrupted(tmp_path, tiny_model):
    data = write_train_file(tmp_path / "train.jsonl")
    # 8 steps, checkpoints at 4 and 8; logs at 1, 3, 6 and (always) the last step, 8
    cfg = train_config(tiny_model, epochs=2, logging_steps=3)
    full = train(cfg, data, tmp_path / "a", progress=False)
    logged = [h["step"] for h in json.loads((tmp_path / "a" / "log_history.json").read_text()) if "loss" in h]
    assert logged == [1, 3, 6, 8]
    assert full["counts"]["trained_tokens"] > 0
    train(cfg, data, tmp_path / "b", progress=False)
    # simulate a crash after step 4: only checkpoint-4 survives, no final model or manifest
    for p in ("model", "manifest.json", "checkpoints/checkpoint-8"):
        shutil.rmtree(tmp_path / "b" / p) if (tmp_path / "b" / p).is_dir() else (tmp_path / "b" / p).unlink()
    resumed = train(cfg, data, tmp_path / "b", progress=False)
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert resumed["counts"]["optimizer_steps"] == 8
    assert resumed["counts"]["final_loss"] == pytest.approx(full["counts"]["final_loss"], rel=1e-4)
    # the tokens of the whole training, not only those since the resume (TRL's own counter restarts at zero)
    assert resumed["counts"]["trained_tokens"] == full["counts"]["trained_tokens"]


def test_lora_trains_and_merges_into_a_plain_model(tmp_path, tiny_model):
    data = write_train_file(tmp_path / "train.jsonl", 8)
    cfg = train_config(tiny_model, epochs=1)
    cfg.train.lora.enabled = True
    cfg.train.lora.r = 4
    cfg.train.lora.alpha = 8
    m = train(cfg, data, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    cfg_json = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert cfg_json["architectures"] == ["LlamaForCausalLM"]
    assert not (tmp_path / "out" / "model" / "adapter_config.json").exists()
    from safetensors import safe_open

    with safe_open(tmp_path / "out" / "model" / "model.safetensors", "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]
    assert m["counts"]["optimizer_steps"] == 2


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_qlora_trains_on_a_4bit_base_and_merges_into_a_plain_model(tmp_path, tiny_model):
    """train.lora.load_in_4bit: the frozen base's linear layers are bitsandbytes 4-bit NF4 during training; the
    saved model is the unquantized base with the adapter merged in (plain float32 weights, no LoRA keys)."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    data = write_train_file(tmp_path / "train.jsonl", 8)
    cfg = train_config(tiny_model, epochs=4)
    cfg.train.lora.enabled = cfg.train.lora.load_in_4bit = True
    cfg.train.lora.r, cfg.train.lora.alpha = 4, 8
    trainer, _, _, _ = build_trainer(cfg, data, tmp_path / "probe", progress=False)
    quantized = [n for n, mod in trainer.model.named_modules() if isinstance(mod, bnb.nn.Linear4bit)]
    assert len(quantized) >= 14 and all(".base_layer" in n for n in quantized)  # every adapted linear is 4-bit
    assert trainer.model.get_nb_trainable_parameters()[0] < 0.2 * trainer.model.get_nb_trainable_parameters()[1]
    m = train(cfg, data, tmp_path / "out", progress=False)
    assert m["counts"]["final_loss"] < m["counts"]["first_loss"]
    merged, base = _weights(tmp_path / "out" / "model"), _weights(tiny_model)
    assert sorted(merged) == sorted(base) and {str(v.dtype) for v in merged.values()} == {"torch.float32"}
    changed = [k for k in base if not (merged[k] == base[k].float()).all()]
    assert changed and all(k.endswith("proj.weight") for k in changed)  # the adapted linears, nothing else


def test_full_fine_tuning_keeps_float32_master_weights(tiny_model):
    """At the paper's LR an AdamW step (~lr per weight) is below half of bf16's spacing for typical weights, so
    bf16 weights would not move: full fine-tuning trains float32 weights (compute may still be bf16), a LoRA
    base stays in model.dtype, and train.weights_dtype overrides both."""
    import torch

    from simplesd.train import weights_dtype

    w = torch.tensor([0.02, -0.05, 0.3], dtype=torch.bfloat16)
    assert torch.equal(w - 5e-6, w) and not torch.equal(w.float() - 5e-6, w.float())
    cfg = train_config(tiny_model)
    cfg.model.dtype = "bfloat16"
    assert weights_dtype(cfg) == torch.float32
    cfg.train.lora.enabled = True
    assert weights_dtype(cfg) == torch.bfloat16
    cfg.train.weights_dtype = "float32"
    assert weights_dtype(cfg) == torch.float32


def test_optional_kernels_missing_are_one_clear_error(tmp_path, tiny_model, monkeypatch):
    import importlib.util

    data = write_train_file(tmp_path / "train.jsonl", 2)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else real(name, *a))
    with pytest.raises(InputError, match=r"train.use_liger_kernel.*pip install liger-kernel"):
        build_trainer(train_config(tiny_model, use_liger_kernel=True), data, tmp_path / "x", progress=False)
    r = ssd("train", "--model", tiny_model, "--data", data, "--out", tmp_path / "y", "train.lora.load_in_4bit=true")
    assert r.returncode == 2 and "set train.lora.enabled=true too" in r.stderr.strip().splitlines()[-1]


def test_bad_training_files(tmp_path, tiny_model):
    p = tmp_path / "train.jsonl"
    p.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                 '{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "a"}]}\n')
    with pytest.raises(InputError, match=r"train.jsonl:2: field 'messages\[1\].role' must be 'assistant'"):
        train(train_config(tiny_model), p, tmp_path / "out")
    p.write_text('{"text": "q"}\n')
    with pytest.raises(InputError, match=r"train.jsonl:1: field 'messages' must be a list"):
        train(train_config(tiny_model), p, tmp_path / "out")
    r = ssd("train", "--model", tiny_model, "--data", tmp_path / "none.jsonl", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.strip().endswith("none.jsonl: training file not found (run `ssd filter` first)")


def test_packing_keeps_samples_apart(tmp_path, tiny_model):
    """With train.packing, TRL packs several samples per row with restarting position ids; the model (as TRL calls
    it, use_cache=False) then gives each sample exactly the logits it gets alone: no cross-sample attention."""
    import torch

    data = write_train_file(tmp_path / "train.jsonl", 6)
    trainer, tok, _, _ = build_trainer(train_config(tiny_model, packing=True, per_device_batch_size=1, effective_batch_size=1),
                                    data, tmp_path / "out", progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    pos = batch["position_ids"][0]
    starts = [i for i in range(len(pos)) if pos[i] == 0]
    assert len(starts) >= 2, "several samples share one packed row"
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        bounds = starts + [len(pos)]
        for s, e in zip(bounds, bounds[1:]):
            alone = model(input_ids=batch["input_ids"][:, s:e], use_cache=False).logits[0]
            torch.testing.assert_close(packed[s:e], alone, atol=1e-4, rtol=1e-4)


def test_two_process_launch_accumulates_to_the_same_effective_batch(tmp_path, tiny_model):
    """`torchrun --nproc_per_node 2` (DDP over gloo on CPU): half the accumulation steps, the same optimizer steps
    and losses as one process, and a single set of outputs written by the main process."""
    import subprocess
    import sys

    data = write_train_file(tmp_path / "train.jsonl", 16)
    args = ["train", "--model", str(tiny_model), "--data", str(data), "--no-progress", "train.learning_rate=3e-3",
            "train.effective_batch_size=4", "train.per_device_batch_size=1", "train.max_seq_length=256"]
    one = train(train_config(tiny_model, per_device_batch_size=1, epochs=1), data, tmp_path / "one", progress=False)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "simplesd.cli",
                        *args, "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("train: ") == 1
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert two["counts"]["processes"] == 2 and two["counts"]["gradient_accumulation_steps"] == 2
    assert one["counts"]["gradient_accumulation_steps"] == 4
    assert two["counts"]["optimizer_steps"] == one["counts"]["optimizer_steps"] == 4
    assert two["counts"]["first_loss"] == pytest.approx(one["counts"]["first_loss"], rel=1e-4)


def test_shipped_accelerate_configs_are_what_accelerate_reads():
    """configs/accelerate/*.yaml load with accelerate's own config reader and say what their names say."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).parent.parent / "configs" / "accelerate"
    got = {f.stem: load_config_from_file(str(f)) for f in sorted(folder.glob("*.yaml"))}
    assert set(got) == {"ddp", "fsdp", "zero3", "zero3_offload"}
    assert str(got["ddp"].distributed_type) == "DistributedType.MULTI_GPU"
    assert str(got["fsdp"].distributed_type) == "DistributedType.FSDP" and got["fsdp"].fsdp_config["fsdp_version"] == 2
    assert got["fsdp"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # OUT/model is a plain directory
    for name in ("zero3", "zero3_offload"):
        ds = got[name].deepspeed_config
        assert str(got[name].distributed_type) == "DistributedType.DEEPSPEED" and ds["zero_stage"] == 3
        assert ds["zero3_save_16bit_model"] is True
    assert got["zero3_offload"].deepspeed_config["offload_optimizer_device"] == "cpu"


def test_deepspeed_zero3_launch_trains_like_one_plain_process(tmp_path, tiny_model):
    """`accelerate launch --config_file configs/accelerate/zero3.yaml` (one process; DeepSpeed runs on a CPU):
    the trainer runs under ZeRO-3, reaches the same losses as a plain run, and the gathered model it saves has
    the plain run's weights."""
    pytest.importorskip("deepspeed")
    import subprocess
    import sys
    from pathlib import Path

    data = write_train_file(tmp_path / "train.jsonl", 16)
    args = ["train", "--model", str(tiny_model), "--data", str(data), "--no-progress", "train.learning_rate=3e-3",
            "train.effective_batch_size=4", "train.max_seq_length=256"]
    plain = train(train_config(tiny_model, per_device_batch_size=1, epochs=1), data, tmp_path / "plain", progress=False)
    cfg_file = Path(__file__).parent.parent / "configs" / "accelerate" / "zero3.yaml"
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg_file),
                        "--num_processes", "1", "--mixed_precision", "no", "-m", "simplesd.cli", *args,
                        "--out", str(tmp_path / "z3")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    z3 = json.loads((tmp_path / "z3" / "manifest.json").read_text())
    assert z3["deepspeed"] is True and z3["distributed"] == "DEEPSPEED"
    assert z3["counts"]["optimizer_steps"] == plain["counts"]["optimizer_steps"] == 4
    assert z3["counts"]["final_loss"] == pytest.approx(plain["counts"]["final_loss"], rel=1e-4)
    a, b = _weights(tmp_path / "z3" / "model"), _weights(tmp_path / "plain" / "model")
    assert sorted(a) == sorted(b) and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


# Chat templates in the shape of the paper's models' own (tests/ cannot download them): Qwen3-Thinking-2507's
# assistant turn (reasoning split at </think>, the generation prompt opening <think>) and Llama 3.1's (trimmed
# content, <|eot_id|>). Qwen3-Instruct's is ChatML, the tiny model's own.
QWEN3_THINKING = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'user' -%}{{ '<|im_start|>user\n' + m.content + '<|im_end|>\n' }}"
    "{%- else -%}{%- set content = m.content -%}{%- set reasoning = '' -%}"
    "{%- if '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\n') -%}{%- endif -%}"
    "{{ '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') + '<|im_end|>\n' }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n<think>\n' }}{%- endif -%}"
)
LLAMA_31 = (
    "{{- bos_token }}{%- for m in messages %}"
    "{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\n\n' + (m.content | trim) + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)


def test_training_sees_exactly_the_sampled_context_and_sample(tmp_path, tiny_model, problems_file):
    """Sample -> filter -> TRL's tokenized rows, over both paper prompt templates (stdin and starter code): the
    user turn in train.jsonl is the sampler's prompt byte for byte, and the training sequence is the sampler's
    chat-formatted context, token for token, then the sample and the end-of-turn token, loss on those only."""
    from conftest import read_jsonl
    from transformers import AutoTokenizer

    from simplesd.config import FilterConfig, SSDConfig
    from simplesd.filter import filter_samples
    from simplesd.prompts import chat_text, load_problems, user_prompt
    from simplesd.sample import sample

    cfg = train_config(tiny_model)
    cfg.prompts.path = str(problems_file)
    cfg.sample.n, cfg.sample.max_new_tokens = 1, 12
    sample(cfg, tmp_path / "s", progress=False)
    filter_samples(SSDConfig(filter=FilterConfig(drop_shortest_fraction=0.0, holdout_fraction=0.0, drop_empty=False)), tmp_path / "s", tmp_path / "f")
    rows = read_jsonl(tmp_path / "f" / "train.jsonl")
    problems = {p.id: p for p in load_problems(str(problems_file))}
    records = {r["prompt_id"]: r for s in sorted((tmp_path / "s").glob("shard-*.jsonl")) for r in read_jsonl(s)}
    assert {problems[r["prompt_id"]].kind for r in rows} == {"stdin", "starter"} and len(rows) == 12
    for r in rows:
        assert r["messages"][0]["content"] == records[r["prompt_id"]]["prompt"] == user_prompt(problems[r["prompt_id"]])
    trainer, tok, _, rendering = build_trainer(cfg, tmp_path / "f" / "train.jsonl", tmp_path / "t", progress=False)
    assert rendering["rendered_differently"] == 0 and rendering["rows"] == 12
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    by_prompt = {r["messages"][0]["content"]: r for r in rows}
    for ex in trainer.train_dataset:
        context_text = tok.decode(ex["input_ids"]).split("<|im_start|>assistant\n")[0] + "<|im_start|>assistant\n"
        row = by_prompt[context_text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]]
        context = tok(chat_text(tok, row["messages"][0]["content"]), add_special_tokens=False)["input_ids"]
        n = len(context)
        assert ex["input_ids"][:n] == context  # the sampler's context, token for token
        assert ex["labels"] == [-100] * n + ex["input_ids"][n:]  # loss on the sample only
        body = ex["input_ids"][n:]
        assert tok.decode(body[: body.index(eot)]) == row["messages"][1]["content"]  # the sample, then end-of-turn
    assert AutoTokenizer.from_pretrained(tiny_model).chat_template == tok.chat_template  # one template for both


def test_templates_that_rewrite_the_assistant_turn_are_counted(tiny_model, caplog):
    """Qwen3-Thinking: the generation prompt opens <think>, so a sample is 'reasoning</think>answer'; the template
    renders that as sampled, but an unclosed reasoning block (cut off by the token cap) is moved into an empty
    <think></think>: counted and warned. Llama 3.1 trims the content: a sample ending in whitespace differs."""
    from transformers import AutoTokenizer

    from simplesd.prompts import chat_text
    from simplesd.train import check_rendering

    tok = AutoTokenizer.from_pretrained(tiny_model)

    def rows(*outputs):
        return [{"prompt": [{"role": "user", "content": "Write f."}], "completion": [{"role": "assistant", "content": o}]}
                for o in outputs]

    tok.chat_template = QWEN3_THINKING
    assert chat_text(tok, "Write f.").endswith("<|im_start|>assistant\n<think>\n")
    done = "plan the loop\n</think>\n\n```python\nprint(1)\n```"
    assert check_rendering(tok, rows(done), "x")["rendered_differently"] == 0
    caplog.clear()
    r = check_rendering(tok, rows(done, "plan the loop and then"), "x")
    assert r["rendered_differently"] == 1 and r["first_difference"]["row"] == 2
    assert "renders 1 of 2 rows differently" in caplog.text
    tok.chat_template = LLAMA_31
    assert check_rendering(tok, rows("```python\nprint(1)\n```"), "x")["rendered_differently"] == 0
    assert check_rendering(tok, rows("print(1)\n\n"), "x")["rendered_differently"] == 1


# the tiny model's loss per optimizer step on write_train_file's 16 rows (3 epochs of 4 steps, seed 0), as this
# code computed it on a 2-core x86 CPU with torch 2.13; a change to what is trained on (masking, template,
# accumulation, LR schedule) moves these far more than the tolerance
PINNED_LOSSES = [6.8172, 6.7770, 6.0087, 5.4981, 4.9735, 4.4989, 4.1697, 3.7701, 3.5675, 3.3945, 3.3016, 3.2427]


def test_tiny_models_loss_curve_is_pinned(tmp_path, tiny_model):
    """As torchtune pins its recipes' losses: the same data, seed and settings give the same curve."""
    from simplesd.train import train

    data = write_train_file(tmp_path / "train.jsonl")
    m = train(train_config(tiny_model), data, tmp_path / "out", progress=False)
    losses = [h["loss"] for h in json.loads((tmp_path / "out" / "log_history.json").read_text()) if "loss" in h]
    assert m["counts"]["optimizer_steps"] == len(losses) == 12
    assert losses == pytest.approx(PINNED_LOSSES, rel=0.01)
