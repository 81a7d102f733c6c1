"""The paper's own models, for real: tiny random-weight models in the real architectures (Qwen3ForCausalLM,
Qwen3MoeForCausalLM, LlamaForCausalLM with llama3 rope scaling) with the real tokenizers, chat templates and
generation configs from ../shared/models, through sample -> filter -> train -> evaluate -> analyze. Every trained
sequence is the sampled one, token for token: the context ids the sampler fed the model, then the ids it drew,
the stop token last only where the sample ended by itself."""

import json
from pathlib import Path

import pytest
from conftest import MODELS, SHAPES, read_jsonl

STOPS = {"qwen3-instruct": [151645, 151643], "qwen3-thinking": [151645, 151643], "llama-3.1": [128001, 128008, 128009],
         "qwen3-moe": [151645, 151643]}
MAX_NEW = 16


def config(model_dir, prompts, **sample):
    from simplesd.config import SSDConfig

    cfg = SSDConfig()
    cfg.model.name_or_path = str(model_dir)
    cfg.prompts.path = str(prompts)
    cfg.prompts.decontaminate = False
    cfg.sample.n, cfg.sample.max_new_tokens, cfg.sample.batch_size = 2, MAX_NEW, 4
    # the rigged stop probability holds at T = 1 untruncated (the paper's T_train and truncation are tested elsewhere)
    cfg.sample.temperature, cfg.sample.top_k, cfg.sample.top_p = 1.0, 0, 1.0
    cfg.filter.drop_shortest_fraction, cfg.filter.holdout_fraction, cfg.filter.drop_empty = 0.0, 0.0, False
    cfg.train.learning_rate, cfg.train.effective_batch_size, cfg.train.per_device_batch_size = 1e-3, 4, 2
    cfg.train.epochs, cfg.train.save_steps, cfg.train.max_seq_length = 1, 100, 1024
    for k, v in sample.items():
        setattr(cfg.sample, k, v)
    return cfg


def records_of(sample_dir):
    return [r for s in sorted(Path(sample_dir).glob("shard-*.jsonl")) for r in read_jsonl(s)]


def assert_token_exact(cfg, sample_dir, filter_dir, tmp_path, stops):
    """The sampler fed the model the template's rendering of the context, token for token; each record's drawn
    ids end with a stop id exactly when it stopped; the training examples are those ids, loss on the drawn ones."""
    from simplesd.chat import encode, render
    from simplesd.models import load_tokenizer
    from simplesd.prompts import context, read_problems
    from simplesd.train import build_trainer

    tok = load_tokenizer(cfg.model)
    problems = {row.problem.id: row.problem for row in read_problems(cfg.prompts.path, fields=cfg.prompts.fields)}
    records = records_of(sample_dir)
    for r in records:
        assert r["prompt_token_ids"] == encode(tok, [render(tok, context(problems[r["prompt_id"]], cfg.prompts.system_prompt))])[0]
        ids = r["completion_token_ids"]
        assert len(ids) == r["completion_tokens"]
        if r["finish_reason"] == "stop":
            assert ids[-1] in stops and not set(ids[:-1]) & set(stops)
        else:
            assert len(ids) == cfg.sample.max_new_tokens and not set(ids) & set(stops)
    trainer, _, _, info = build_trainer(cfg, Path(filter_dir) / "train.jsonl", tmp_path / "probe", progress=False)
    assert info["mode"] == "token_exact" and info["token_exact"] == len(records) == len(trainer.train_dataset)
    by_ids = {tuple(r["prompt_token_ids"] + r["completion_token_ids"]): r for r in records}
    for ex in trainer.train_dataset:
        r = by_ids[tuple(ex["input_ids"])]  # every trained sequence is a sampled one
        n = len(r["prompt_token_ids"])
        assert ex["labels"] == [-100] * n + r["completion_token_ids"]
    # batched as training batches them: padding (with the pad token, which is an eos id for Qwen and, set by
    # simplesd, Llama's end-of-turn) is masked by position, never by id: every drawn stop token stays a label
    examples = list(trainer.train_dataset)
    batch = trainer.data_collator(examples)
    assert tok.pad_token_id in stops
    for row, ex in zip(batch["labels"].tolist(), examples):
        assert row[: len(ex["labels"])] == ex["labels"] and set(row[len(ex["labels"]):]) <= {-100}
    ended = [ex for ex in examples if ex["labels"][-1] in stops]
    assert len(ended) == sum(r["finish_reason"] == "stop" for r in records)
    return records, info


@pytest.mark.parametrize("shape", list(SHAPES))
def test_real_shape_pipeline_trains_on_exactly_what_was_sampled(shape, scaled, humaneval_short8, tmp_path):
    """sample (transformers) -> filter -> train (full) on each real shape: token-exact; the stop ids are the
    generation config's; what rendering the text through the template would have done is on record (the issue's
    measurement: Qwen3-Instruct and -Thinking rewrite every row, Llama trims, the reconstructed MoE template
    leaves them)."""
    from simplesd.filter import filter_samples
    from simplesd.sample import sample
    from simplesd.sampling.backends import load_engine
    from simplesd.train import train

    cfg = config(scaled[shape], humaneval_short8)
    engine = load_engine(cfg)
    assert engine.stop_ids == STOPS[shape]
    m = sample(cfg, tmp_path / "s", progress=False, loaded=engine)
    filter_samples(cfg, tmp_path / "s", tmp_path / "f")
    records, info = assert_token_exact(cfg, tmp_path / "s", tmp_path / "f", tmp_path, STOPS[shape])
    ended = [r for r in records if r["finish_reason"] == "stop"]
    assert ended and len(ended) < len(records)  # some stopped by themselves, some ran to the cap
    assert {r["completion_token_ids"][-1] for r in ended} == set(STOPS[shape])  # every stop id ends some sample
    outputs = [r["output"] for r in records]
    would = {"qwen3-instruct": len(records), "qwen3-thinking": len(records), "qwen3-moe": 0,
             "llama-3.1": sum(o != o.strip() for o in outputs)}[shape]
    assert info["template_would_render_differently"] == would
    if shape == "qwen3-thinking":
        c = m["counts"]
        assert c["thinking"] == len(records) and all(r["thinking"] for r in records)
        assert c["without_think_close"] == sum("</think>" not in o for o in outputs)
        assert c["truncated_in_reasoning"] == sum(r["finish_reason"] == "length" and "</think>" not in r["output"] for r in records)
    else:
        assert not any(r["thinking"] for r in records)
    t = train(cfg, tmp_path / "f" / "train.jsonl", tmp_path / "t", progress=False)
    c = t["counts"]
    assert c["token_exact_rows"] == c["examples"] == len(records) and c["rows_rendered_differently"] == 0
    assert c["trained_tokens"] == sum(len(r["prompt_token_ids"]) + len(r["completion_token_ids"]) for r in records)
    assert t["examples"]["rows_ending_in_stop_token"] == len(ended)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_real_shape_lora_evaluate_and_analyze(shape, scaled, humaneval8, tmp_path):
    """LoRA training (the manifest says which modules were adapted: on Qwen3-MoE "all-linear" is the attention alone,
    as transformers 5 fuses the experts; train.lora.target_parameters adds them), then evaluation (a Thinking model
    is graded on what follows </think>: a reasoning that never closed is no code) and the lock/fork analysis of
    the sampled sequences, token for token."""
    from simplesd.analyze import analyze
    from simplesd.evaluate import evaluate
    from simplesd.filter import filter_samples
    from simplesd.sample import sample
    from simplesd.train import train

    cfg = config(scaled[shape], humaneval8)
    sample(cfg, tmp_path / "s", progress=False)
    filter_samples(cfg, tmp_path / "s", tmp_path / "f")
    cfg.train.lora.enabled, cfg.train.lora.r, cfg.train.lora.alpha = True, 4, 8
    # one optimizer step: what this test asserts is which modules are adapted and that the adapted model evaluates
    # and is analysed (every row being trained is the full training test's); TRL's loss scores all 151 k logits of
    # every position on CPU, ~4 s a micro-batch
    cfg.train.max_steps = 1
    if shape == "qwen3-moe":
        cfg.train.lora.target_parameters = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
        cfg.train.lora.dropout = 0.0  # (PEFT's parameter targets take no dropout)
    t = train(cfg, tmp_path / "f" / "train.jsonl", tmp_path / "t", progress=False)
    kinds = t["lora_targets"]["by_kind"]
    layers = 2
    assert kinds["attention"] == 4 * layers  # q, k, v, o
    if shape == "qwen3-moe":
        assert kinds["mlp"] == 0 and kinds["experts"] >= 2 * layers  # the fused experts, by target_parameters
    else:
        assert kinds["mlp"] == 3 * layers and kinds["experts"] == kinds["router"] == 0  # gate, up, down
    assert t["counts"]["token_exact_rows"] == t["counts"]["examples"]

    cfg.eval.benchmark, cfg.eval.problems, cfg.eval.n, cfg.eval.max_new_tokens = "humaneval", str(humaneval8), 1, MAX_NEW
    cfg.eval.temperature, cfg.eval.top_k, cfg.eval.top_p, cfg.eval.workers = 1.0, 0, 1.0, 2
    ev = evaluate(cfg, str(tmp_path / "t" / "model"), tmp_path / "e", progress=False)
    summary = json.loads((tmp_path / "e" / "T1" / "summary.json").read_text())
    assert summary["problems_graded"] == 8 and ev["best_pass@1"]["value"] == 0.0  # random weights write no program
    records = records_of(tmp_path / "e" / "T1" / "samples")
    if shape == "qwen3-thinking":  # no sample closed its reasoning: each is no code, whatever its text holds
        assert summary["reasoning"] == {"samples": 8, "unclosed": 8, "unclosed_truncated": sum(
            r["finish_reason"] == "length" for r in records)}
        assert summary["verdicts"] == {"no_code": 8}
    else:
        assert "reasoning" not in summary

    cfg.analyze.max_texts, cfg.analyze.batch_tokens = 6, 8192
    a = analyze(cfg, str(scaled[shape]), str(tmp_path / "t" / "model"), tmp_path / "f" / "train.jsonl", tmp_path / "a")
    import pandas as pd

    df = pd.read_parquet(tmp_path / "a" / "tokens.parquet")
    rows = read_jsonl(tmp_path / "f" / "train.jsonl")[:6]
    for i, row in enumerate(rows):  # the analysed tokens are the drawn ones
        assert df[df.text_index == i].sort_values("position").token_id.tolist() == row["completion_ids"]
    assert a["counts"]["tokens"] == sum(len(r["completion_ids"]) for r in rows)


def test_estimate_counts_the_real_architectures_parameters(scaled):
    """`ssd estimate`'s parameter count from each real config equals the instantiated model's: the scaled one, and the
    full-size one built on the meta device (no memory); the built-in table of the paper's models agrees too."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from simplesd.estimate import KNOWN, shape_of

    hub = {"qwen3-instruct": "Qwen/Qwen3-4B-Instruct-2507", "qwen3-thinking": "Qwen/Qwen3-4B-Thinking-2507",
           "llama-3.1": "meta-llama/Llama-3.1-8B-Instruct", "qwen3-moe": "Qwen/Qwen3-30B-A3B-Instruct-2507"}
    for shape, folder in SHAPES.items():
        for source in (scaled[shape], MODELS / folder):
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
            assert shape_of(str(source)).params() == sum(p.numel() for p in model.parameters()), (shape, source)
        assert KNOWN[hub[shape]] == shape_of(str(MODELS / folder)), shape
    moe = shape_of(str(MODELS / SHAPES["qwen3-moe"]))
    assert round(moe.params() / 1e9, 1) == 30.5 and 3.3e9 <= moe.params(active=True) < 3.4e9  # the card: 30.5B, 3.3B active


def test_prompts_users_have_are_sampled_and_trained_token_exact(scaled, tmp_path):
    """A user's own records through prompts.fields, rows that are already chat messages, a system prompt, and a
    model.chat_template override: the context the sampler renders is the one trained on, token for token (Llama 3.1's
    template trims the system prompt and dates it: what was sampled is what is trained)."""
    from simplesd.chat import render
    from simplesd.filter import filter_samples
    from simplesd.models import load_tokenizer
    from simplesd.sample import sample

    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"uid": f"u{i}", "problem": f"Print the sum of {i} and {i + 1}.", "starter": ""}) + "\n"
                           for i in range(4)))
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"id": f"c{i}", "messages": [
        {"role": "system", "content": "You write Python."}, {"role": "user", "content": "Print 1."},
        {"role": "assistant", "content": "```python\nprint(1)\n```"}, {"role": "user", "content": f"Now print {i}."}]}) + "\n"
        for i in range(4)))
    template = tmp_path / "override.jinja"
    template.write_text((MODELS / SHAPES["qwen3-moe"] / "chat_template.jinja").read_text())  # the MoE's: no <think>
    for name, shape, prompts, setup in [
        ("fields", "llama-3.1", own, {"fields": {"id": "uid", "question": "problem", "starter_code": "starter"}}),
        ("system", "llama-3.1", own, {"fields": {"id": "uid", "question": "problem"}, "system_prompt": "  Be brief.  "}),
        ("messages", "qwen3-instruct", chats, {}),
        ("template", "qwen3-thinking", own, {"fields": {"question": "problem"}, "template": template}),
    ]:
        cfg = config(scaled[shape], prompts)
        cfg.prompts.fields = setup.get("fields", {})
        cfg.prompts.system_prompt = setup.get("system_prompt")
        cfg.model.chat_template = str(setup["template"]) if "template" in setup else None
        sample(cfg, tmp_path / name / "s", progress=False)
        filter_samples(cfg, tmp_path / name / "s", tmp_path / name / "f")
        records, _ = assert_token_exact(cfg, tmp_path / name / "s", tmp_path / name / "f", tmp_path / name, STOPS[shape])
        tok = load_tokenizer(cfg.model)
        records.sort(key=lambda r: (r["prompt_id"], r["sample_index"]))
        text = tok.decode(records[0]["prompt_token_ids"])
        rows = sorted(read_jsonl(tmp_path / name / "f" / "train.jsonl"), key=lambda r: (r["prompt_id"], r["sample_index"]))
        if name == "fields":
            assert {r["prompt_id"] for r in records} == {"u0", "u1", "u2", "u3"} and "Print the sum of 0 and 1." in text
        elif name == "system":
            assert "<|start_header_id|>system<|end_header_id|>" in text and "Be brief.<|eot_id|>" in text  # trimmed
            assert rows[0]["messages"][0] == {"role": "system", "content": "  Be brief.  "}  # as given, in the text too
        elif name == "messages":
            assert text.count("<|im_start|>user") == 2 and "<|im_start|>system\nYou write Python." in text
            assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant", "user", "assistant"]
            assert all(r["kind"] == "chat" for r in records)
        else:  # the override replaces the Thinking template: its generation prompt no longer opens <think>
            assert text == render(tok, [{"role": "user", "content": records[0]["prompt"]}]) and not text.endswith("<think>\n")
            assert not any(r["thinking"] for r in records)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_pruned_decoding_draws_what_generate_draws(shape, scaled):
    """`ssd sample`'s loop (decode_pruned: a cache written in place, each prompt prefilled once, finished rows leave
    the batch) draws the tokens transformers' `model.generate` draws with the same seeds, row for row, on each real
    architecture: sampled (the stop probability ends rows at different steps, so rows leave mid-batch), greedy and
    the control's greedy; prompts of different lengths (left padding)."""
    import torch

    from simplesd.chat import encode, render
    from simplesd.config import Decoding, ModelConfig
    from simplesd.models import load_model, load_tokenizer, stop_token_ids
    from simplesd.sampling.backends import generate_batch

    tok = load_tokenizer(ModelConfig(name_or_path=str(scaled[shape])))
    model = load_model(ModelConfig(name_or_path=str(scaled[shape])), "cpu")
    stops = stop_token_ids(model, tok)
    prompts = encode(tok, [render(tok, [{"role": "user", "content": "write code " * k}]) for k in (1, 7, 3)])
    assert len({len(p) for p in prompts}) == 3
    control = dict(decoding="ssd_equivalent", control_temperature=1.5, control_top_k=20, control_top_p=0.8)
    cases = [Decoding(1.0, 0, 1.0, 0.0, 4, 24, 0), Decoding(0.7, 20, 0.9, 0.0, 2, 24, 1),
             Decoding(0.9, 20, 0.95, 0.0, 2, 24, 2, **control), Decoding(0.0, 0, 1.0, 0.0, 1, 24, 0),
             Decoding(0.0, 0, 1.0, 0.0, 1, 24, 0, **control)]
    ended_early = 0
    for d in cases:
        seeds = [] if d.greedy else list(range(100, 100 + len(prompts) * d.n))
        with torch.no_grad():
            pruned = generate_batch(model, tok, prompts, d, stops, seeds)
            anchor = generate_batch(model, tok, prompts, d, stops, seeds, loop="generate")
        assert [r["completion_token_ids"] for r in pruned] == [r["completion_token_ids"] for r in anchor], d
        assert [r["finish_reason"] for r in pruned] == [r["finish_reason"] for r in anchor]
        ended_early += sum(r["finish_reason"] == "stop" for r in pruned)
    assert ended_early >= 3  # rows really left the batch before others
