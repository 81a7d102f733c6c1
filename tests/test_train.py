import json
import os
import shutil

import pytest
from conftest import read_jsonl, ssd, train_config, write_train_file

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
    # only the main process prints: the result once, and a line per logged step once
    assert r.stdout.count("train: 4 steps, final loss") == 1 and r.stdout.count("train: step 1/4 ") == 1
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


def test_training_sees_exactly_the_sampled_context_and_sample(tmp_path, tiny_model, problems_file):
    """Sample -> filter -> TRL's tokenized rows, over both paper prompt templates (stdin and starter code): the
    user turn in train.jsonl is the sampler's prompt byte for byte, and the training sequence is the ids the sampler
    fed the model, then the ids it drew (the end-of-turn token only where it stopped), loss on those only."""
    from transformers import AutoTokenizer

    from simplesd.chat import encode, render
    from simplesd.config import FilterConfig, SSDConfig
    from simplesd.filter import filter_samples
    from simplesd.prompts import load_problems, user_prompt
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
    tok = AutoTokenizer.from_pretrained(tiny_model)
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    for r in rows:
        rec = records[r["prompt_id"]]
        assert r["messages"][0]["content"] == rec["prompt"] == user_prompt(problems[r["prompt_id"]])
        assert r["prompt_ids"] == rec["prompt_token_ids"] == encode(tok, [render(tok, rec["prompt"])])[0]
        assert r["completion_ids"] == rec["completion_token_ids"]
        assert (r["completion_ids"][-1] == eot) == (rec["finish_reason"] == "stop")
    trainer, tok, _, info = build_trainer(cfg, tmp_path / "f" / "train.jsonl", tmp_path / "t", progress=False)
    assert info["mode"] == "token_exact" and info["token_exact"] == 12 and info["context_differs_from_template"] == 0
    assert info["template_would_render_differently"] == 0  # ChatML: rendering the text again would agree here
    by_ids = {tuple(r["prompt_ids"] + r["completion_ids"]): r for r in rows}
    for ex in trainer.train_dataset:
        row = by_ids[tuple(ex["input_ids"])]
        n = len(row["prompt_ids"])
        assert ex["labels"] == [-100] * n + row["completion_ids"]  # loss on the sample only


def _row(*messages, ids=None):
    row = {"messages": [{"role": r, "content": c} for r, c in messages]}
    if ids:
        row.update(prompt_ids=ids[0], completion_ids=ids[1], finish_reason=ids[2])
    return json.dumps(row) + "\n"


def test_text_rows_rendered_by_the_paper_templates_are_counted(tmp_path, caplog):
    """A user's text file (no ids) is rendered by the chat template, as TRL does; the paper's real templates
    (../shared/models) rewrite the assistant turn: Qwen3-Instruct-2507 writes an empty <think></think> before it,
    Qwen3-Thinking-2507 re-renders the reasoning around </think>, Llama 3.1 trims the content. Counted and warned."""
    from conftest import SHARED
    from transformers import AutoTokenizer

    from simplesd.chat import render
    from simplesd.train import check_rendering, read_train_rows

    models = SHARED.parent / "models"
    path = tmp_path / "t.jsonl"

    def counted(name, *outputs):
        path.write_text("".join(_row(("user", "Write f."), ("assistant", o)) for o in outputs))
        return check_rendering(AutoTokenizer.from_pretrained(models / name), read_train_rows(path), "x")

    r = counted("Qwen3-4B-Instruct-2507", "```python\nprint(1)\n```")
    assert r["rendered_differently"] == 1 and "<think>" in r["first_difference"]["trained"]
    thinking = AutoTokenizer.from_pretrained(models / "Qwen3-4B-Thinking-2507")
    assert render(thinking, "Write f.").endswith("<|im_start|>assistant\n<think>\n")
    caplog.clear()
    # a closed reasoning block renders as sampled; a reasoning cut off by the cap gets an empty block first, and
    # one that starts with a newline loses it
    r = counted("Qwen3-4B-Thinking-2507", "plan the loop\n</think>\n\n```python\nprint(1)\n```", "plan the loop and then",
                "\nplan\n</think>\n\nx")
    assert r["rendered_differently"] == 2 and r["first_difference"]["row"] == 2
    assert "renders 2 of 3 rows differently" in caplog.text and "token-exact" in caplog.text  # and says what avoids it
    assert counted("Llama-3.1-8B-Instruct", "```python\nprint(1)\n```")["rendered_differently"] == 0
    assert counted("Llama-3.1-8B-Instruct", "print(1)\n\n")["rendered_differently"] == 1
    assert counted("Qwen3-30B-A3B-Instruct-2507", "print(1)\n\n", "<think>x</think>y")["rendered_differently"] == 0
    # the same text, other tokens: the context's last "\n" and the sample's first two merge into one token
    assert counted("Qwen3-30B-A3B-Instruct-2507", "\n\nprint(1)")["rendered_differently"] == 1


def test_token_exact_rows_are_checked_against_their_text(tmp_path, tiny_model):
    """Ids that do not decode to the row's assistant text (another tokenizer, an edited text), ids outside the
    model's vocabulary and a file mixing token-exact and text rows are refused with one line, before any work."""
    from transformers import AutoTokenizer

    from simplesd.chat import encode, render

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = encode(tok, [render(tok, "q")])[0]
    good = tok("print(1)", add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    p = tmp_path / "train.jsonl"
    cases = [
        (_row(("user", "q"), ("assistant", "print(2)"), ids=(prompt, good, "stop")),
         "train.jsonl:1: field 'completion_ids' does not decode to the assistant message"),
        (_row(("user", "q"), ("assistant", "print(1)"), ids=(prompt, good[:-1] + [10**6], "length")),
         "train.jsonl:1: token id 1000000 is outside the model's vocabulary"),
        (_row(("user", "q"), ("assistant", "print(1)"), ids=(prompt, good, "stop")) + _row(("user", "q"), ("assistant", "a")),
         "train.jsonl:2: field 'prompt_ids'/'completion_ids': the rows before this one have token ids"),
        (_row(("user", "q"), ("assistant", "print(1)"), ids=(prompt, [], "stop")), "train.jsonl:1: field 'completion_ids' is empty"),
        ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "prompt_ids": [1, "x"], '
         '"completion_ids": [2]}\n', "train.jsonl:1: field 'prompt_ids' must be a list of token ids"),
    ]
    for text, message in cases:
        p.write_text(text)
        r = ssd("train", "--model", tiny_model, "--data", p, "--out", tmp_path / "o")
        assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], (message, r.stderr[-500:])
        assert not (tmp_path / "o").exists()
    p.write_text(_row(("user", "q"), ("assistant", "print(1)"), ids=(prompt, good, "stop")))
    trainer, _, _, info = build_trainer(train_config(tiny_model), p, tmp_path / "probe", progress=False)
    assert trainer.train_dataset[0]["input_ids"] == prompt + good and info["rows_ending_in_stop_token"] == 1


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


def test_trackers_get_the_training_and_the_results_in_one_run(tmp_path, tiny_model, quick_demo, monkeypatch):
    """train.report_to as TRL's users set it: tensorboard, wandb and trackio (offline, real packages) receive the
    training through transformers' callbacks and then the run's results (`trackers.log_summaries`, what `ssd run`
    calls after evaluating) in the same run; none writes nothing."""
    import sqlite3

    import wandb
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from trackio.sqlite_storage import SQLiteStorage

    from simplesd.trackers import log_summaries

    project = f"ssd-test-{os.getpid()}"  # (trackio keeps one database per project, where TRACKIO_DIR was at import)
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                 "WANDB_PROJECT": "ssd-test", "TRACKIO_PROJECT": project}.items():
        monkeypatch.setenv(k, v)
    demo, _ = quick_demo
    evaluation = json.loads((demo / "eval" / "comparison.json").read_text())
    findings = json.loads((demo / "analysis" / "summary.json").read_text())["findings"]
    data = write_train_file(tmp_path / "train.jsonl", n=8)
    try:
        m = train(train_config(tiny_model, epochs=1, report_to=["tensorboard", "wandb", "trackio"], run_name="tiny-ssd"),
                  data, tmp_path / "out", progress=False)
        info = m["trackers"]
        assert info["report_to"] == ["tensorboard", "wandb", "trackio"] and info["run_name"] == "tiny-ssd"
        assert wandb.run is not None and info["wandb"]["id"] == wandb.run.id and info["wandb"]["project"] == "ssd-test"
        assert log_summaries(m, tmp_path / "out", evaluation, findings, "results") == ["tensorboard", "wandb", "trackio"]
        best = evaluation["tuned"]["best_pass@1"]["value"]
        assert wandb.run.id == info["wandb"]["id"] and wandb.run.summary["eval/ssd/best_pass@1"] == pytest.approx(best)
        assert "train/loss" in dict(wandb.run.summary)
    finally:
        wandb.finish()
        wandb.teardown()
    assert info["trackio"] == {"project": project, "name": "tiny-ssd"}
    path = SQLiteStorage.get_project_db_path(project)
    try:
        with sqlite3.connect(path) as db:
            logged = [(run_id, json.loads(metrics)) for run_id, metrics in db.execute("select run_id, metrics from metrics")]
    finally:
        for f in path.parent.glob(path.stem + ".*"):
            f.unlink()
    assert len({run_id for run_id, _ in logged}) == 1  # the training and the results: one trackio run
    assert any("train/loss" in x for _, x in logged)
    assert [x["eval/ssd/best_pass@1"] for _, x in logged if "eval/ssd/best_pass@1" in x] == [pytest.approx(best)]
    events = EventAccumulator(str(tmp_path / "out" / "tensorboard")).Reload()
    assert {"train/loss", "eval/ssd/best_pass@1", "analysis/lock_tail_mass/ssd"} <= set(events.Tags()["scalars"])

    m = train(train_config(tiny_model, epochs=1, report_to=["none"]), data, tmp_path / "quiet", progress=False)
    assert m["trackers"]["report_to"] == [] and not (tmp_path / "quiet" / "tensorboard").exists()
    assert log_summaries(m, tmp_path / "quiet", evaluation, findings, "results") == []


def test_a_missing_tracker_is_one_clear_line_before_any_work(tmp_path, tiny_model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    data = write_train_file(tmp_path / "train.jsonl", n=4)
    with pytest.raises(InputError, match=r"train.report_to.*wandb is not installed \(pip install wandb\)"):
        train(train_config(tiny_model, report_to=["wandb"]), data, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
