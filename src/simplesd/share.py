"""Sharing a run the way the Hub's users expect: `ssd export` writes a Hub-ready model folder and dataset folder
with their cards, `ssd push` (or train.push_to_hub) uploads them with huggingface_hub's own calls.

    OUT/model/     the SSD model (the run's train/model), generation_config.json at the SSD arm's tuned T_eval,
                   README.md (model card: base model, SSD settings, prompts and decontamination, the evaluation
                   table with CIs and the three arms, the lock/fork analysis, versions), images/, ssd_config.yaml
    OUT/dataset/   data/<split>-00000-of-00001.parquet (datasets' own writer: train = what was trained on, heldout =
                   the samples kept out for the analysis) + README.md (dataset card with its `configs`)
    OUT/export.json  what was exported from which run (fingerprints, counts, versions)

The dataset's columns are TRL's: `prompt` and `completion` (conversational) and, for token-exact runs, the
`input_ids` and `completion_mask` `ssd train` trains on, so `trl sft --dataset_name OUT/dataset` (or the Hub id)
trains on exactly the sampled tokens with the loss on the sample only, as `ssd train` does.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .io import InputError, StageFailed, atomic_path, read_json, remove_path, write_json

log = logging.getLogger(__name__)

PAPER = ("Embarrassingly Simple Self-Distillation Improves Code Generation", "2604.01193")
CITATION = """@article{zhang2026ssd,
  title   = {Embarrassingly Simple Self-Distillation Improves Code Generation},
  author  = {Zhang and others},
  journal = {arXiv preprint arXiv:2604.01193},
  year    = {2026}
}"""
# the benchmarks' Hub datasets, for the card's model-index (custom tests have none)
BENCHMARK_DATASETS = {"humaneval": "openai/openai_humaneval", "humaneval+": "evalplus/humanevalplus",
                      "mbpp": "google-research-datasets/mbpp", "mbpp+": "evalplus/mbppplus",
                      "livecodebench": "livecodebench/code_generation_lite", "codecontests": "deepmind/code_contests"}


@dataclass
class Run:
    """What a run directory holds, for the cards: `dir` is the round that trained the exported model (the run
    itself, or the last round of `ssd run --rounds N`, or a bare `ssd train` output)."""

    root: Path
    dir: Path
    model_dir: Path
    train: dict                # the train manifest
    config: dict               # the run's resolved config (the train manifest's model/train sections for `ssd train`)
    filter_dir: Path | None    # train.jsonl, heldout.jsonl, stats.json (None: a bare `ssd train` output)
    evaluation: dict | None    # eval/comparison.json
    rounds: dict | None        # rounds.json

    def train_config(self):
        """The config the model was trained with, as an SSDConfig."""
        from .config import SSDConfig, apply_mapping

        return apply_mapping(SSDConfig(), {k: self.config[k] for k in ("model", "train") if k in self.config})

    @property
    def base_model(self) -> str:
        return (self.rounds or {}).get("base") or self.config["model"]["name_or_path"]


def locate(run_dir: str | Path) -> Run:
    """The parts of an `ssd run` / `ssd demo` / `ssd run --rounds N` / `ssd train` output directory."""
    root = Path(run_dir)
    if not root.is_dir():
        raise InputError(f"{root}: run directory not found")
    if (root / "sweep.json").is_file():
        raise InputError(f"{root}: a sweep's directory; export one of its runs: {root}/points/<point>")
    rounds = read_json(root / "rounds.json", default=None)
    run = root / f"round-{rounds['rounds_run']}" if rounds else root
    if (run / "train" / "manifest.json").is_file():
        train_dir = run / "train"
    elif (read_json(run / "manifest.json", default=None) or {}).get("stage") == "train":
        train_dir = run
    else:
        raise InputError(f"{root}: not a finished run (no train/manifest.json: run `ssd run` or `ssd train` to the end first)")
    manifest = read_json(train_dir / "manifest.json")
    if not manifest.get("complete") or not (train_dir / "model" / "config.json").is_file():
        raise InputError(f"{train_dir}: training did not finish (rerun the same command to resume it)")
    config = read_json(run / "run.json", default={}).get("config") or manifest["config"]
    filter_dir = run / "filter" if (run / "filter" / "train.jsonl").is_file() else None
    return Run(root, run, train_dir / "model", manifest, config, filter_dir,
               read_json(run / "eval" / "comparison.json", default=None), rounds)


def _versions(run: Run) -> str:
    env = run.train.get("environment", {})
    pk = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)
    return f"Python {env.get('python', '?')}; {pk}" + (f"; simplesd commit {env['git_commit']}" if env.get("git_commit") else "")


def _settings_table(run: Run) -> list[str]:
    c = run.config
    s, f, t = c.get("sample"), c.get("filter"), c["train"]
    rows = []
    if s:
        rows.append(("sample", f"T_train {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}, min-p {s['min_p']}, "
                               f"{s['n']} per prompt, max {s['max_new_tokens']} new tokens, seed {s['seed']}, "
                               f"backend {s['backend']}, decoding {s.get('decoding', 'plain')}"))
    if f:
        rows.append(("filter", f"drop empty {f['drop_empty']}, drop the shortest {f['drop_shortest_fraction']:.0%}, "
                               f"code block required {f['require_code_block']}, drop truncated {f['drop_truncated']}, "
                               f"drop looping {f['drop_looping']}, held out for analysis {f['holdout_fraction']:.0%}"))
    lora = t["lora"]
    rows.append(("train", f"SFT (TRL), loss on the sample only, {t['optimizer']}, {t['lr_scheduler']} schedule, peak LR "
                          f"{t['learning_rate']:g}, warmup {t['warmup_ratio']}, effective batch {t['effective_batch_size']}, "
                          f"{t['epochs']:g} epochs" + (f" (max {t['max_steps']} steps)" if t["max_steps"] > 0 else "")
                          + f", max {t['max_seq_length']} tokens, seed {t['seed']}, "
                          + (f"LoRA r {lora['r']} alpha {lora['alpha']} ({'merged' if lora['merge'] else 'adapter'})"
                             if lora["enabled"] else "full fine-tuning")))
    counts = run.train["counts"]
    rows.append(("trained", f"{counts['examples']} examples, {counts['optimizer_steps']} optimizer steps, "
                            f"{counts['trained_tokens']} tokens, loss {counts['first_loss']:.4f} -> {counts['final_loss']:.4f}, "
                            f"token-exact rows {counts.get('token_exact_rows', 0)}"))
    return ["| step | settings |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]


def _prompt_source(run: Run) -> str:
    p = run.config.get("prompts")
    if not p:
        return "not recorded (a bare `ssd train` run)"
    return f"`{p['path']}`" + (f" (split {p['split']})" if p.get("split") else "")


def _eval_results(run: Run, model_name: str) -> list:
    from huggingface_hub import EvalResult

    ev, bench = run.evaluation, (run.config.get("eval") or {}).get("benchmark")
    if not ev or "tuned" not in ev or bench not in BENCHMARK_DATASETS:
        return []
    best = ev["tuned"]
    row = best["by_temperature"][best["best_temperature"]]
    return [EvalResult(task_type="text-generation", dataset_type=BENCHMARK_DATASETS[bench], dataset_name=bench,
                       metric_type=k, metric_name=f"{k} (T_eval {best['best_temperature']})", metric_value=round(v, 4))
            for k, v in row.items()]


def model_card(run: Run, out: Path, repo_id: str | None, dataset_id: str | None, base_model: str | None,
               final: Path | None = None):
    """The model card (huggingface_hub's ModelCard), its plots written to out/images; the code in it loads
    `repo_id`, else the folder's `final` path."""
    from huggingface_hub import ModelCard, ModelCardData

    from .report import card_sections

    name = (repo_id or run.root.name).split("/")[-1]
    is_adapter = (run.model_dir / "adapter_config.json").is_file()
    data = ModelCardData(
        base_model=base_model, library_name="peft" if is_adapter else "transformers", pipeline_tag="text-generation",
        tags=["simplesd", "ssd", "self-distillation", "code", "trl", "sft"], datasets=[dataset_id] if dataset_id else None,
        model_name=name, eval_results=_eval_results(run, name) or None)
    e = run.config.get("eval") or {}
    tuned = (run.evaluation or {}).get("tuned")
    where = repo_id or str((final or out).resolve())
    if tuned:
        t = float(tuned["best_temperature"])
        decode = (f"SSD's tuned T_eval on {e.get('benchmark')} was {tuned['best_temperature']} "
                  + (f"(top-k {e.get('top_k')}, top-p {e.get('top_p')}); generation_config.json samples there by default."
                     if t > 0 else "(greedy); generation_config.json decodes greedily by default."))
    else:
        decode = "Not evaluated: decode at a T_eval tuned on your own problems (the paper tunes it separately from T_train)."
    base_text = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else f"`{run.base_model}` (a local model)"
    rounds = (f" This is round {run.rounds['rounds_run']} of iterative SSD ({run.rounds['rounds_run']} rounds, each "
              "sampling from the previous round's model)." if run.rounds else "")
    lines = [
        f"# {name}", "",
        f"{base_text} fine-tuned with Simple Self-Distillation ([SSD, arXiv {PAPER[1]}](https://arxiv.org/abs/{PAPER[1]})) "
        "by simplesd: the frozen base sampled one solution per problem at a training "
        "temperature with truncation, the empty and shortest samples were dropped, and the model was fine-tuned on its own "
        f"samples with plain SFT, the loss on the sampled tokens only. No verifier, tests, teacher or RL.{rounds}"
        + (f" The samples it was trained on: [{dataset_id}](https://huggingface.co/datasets/{dataset_id})." if dataset_id else ""),
        "", "## Use", "", decode, "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        f'tok = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        'messages = [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}]',
        "ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)",
        "out = model.generate(**ids, max_new_tokens=512)  # decoding settings: generation_config.json",
        "print(tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))", "```", "",
        "## How it was made", "",
        f"Base model: {base_text}. Prompts: {_prompt_source(run)}. The resolved config is `ssd_config.yaml`; "
        "`ssd run --config ssd_config.yaml` repeats the run (with your paths).", "",
        *_settings_table(run), "",
    ]
    lines += [card_sections(run.dir, out / "images", run.root if run.rounds else None), ""] if run.filter_dir else []
    lines += ["## Versions", "", _versions(run), "", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def dataset_rows(path: Path) -> list[dict]:
    """train.jsonl / heldout.jsonl as TRL's conversational prompt-completion rows, with the token ids
    `ssd train` trains on (input_ids = prompt_ids + completion_ids, completion_mask 1 on the sample)."""
    from .train import read_train_rows

    rows = []
    for r in read_train_rows(path):
        row = {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
        if r["prompt_ids"] is not None:
            p, c = r["prompt_ids"], r["completion_ids"]
            row.update(input_ids=p + c, completion_mask=[0] * len(p) + [1] * len(c))
        # the sampler's bookkeeping, for tracing a row back to its problem
        row.update(prompt_id=str(r["prompt_id"] or ""), sample_index=int(r["sample_index"] or 0),
                   finish_reason=str(r["finish_reason"] or ""))
        rows.append(row)
    return rows


def write_dataset(run: Run, out: Path) -> dict:
    """out/data/<split>-00000-of-00001.parquet with datasets' writer; returns the rows per split and the card's
    `dataset_info` (features, split sizes: what `push_to_hub` writes; `load_dataset` of a local folder caches by
    its card, so without it two exports' folders would share one cache)."""
    from datasets import Dataset

    splits, info = {}, {"features": None, "splits": [], "download_size": 0, "dataset_size": 0}
    for split, name in (("train", "train.jsonl"), ("heldout", "heldout.jsonl")):
        path = run.filter_dir / name
        if path.is_file() and path.stat().st_size:
            ds = Dataset.from_list(dataset_rows(path))
            (out / "data").mkdir(parents=True, exist_ok=True)
            file = out / "data" / f"{split}-00000-of-00001.parquet"
            ds.to_parquet(str(file))
            splits[split] = len(ds)
            nbytes = int(ds.data.nbytes)
            info["features"] = ds.features._to_yaml_list()
            info["splits"].append({"name": split, "num_bytes": nbytes, "num_examples": len(ds)})
            info["download_size"] += file.stat().st_size
            info["dataset_size"] += nbytes
    return splits, info


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def dataset_card(run: Run, splits: dict, info: dict, repo_id: str | None, dataset_id: str | None,
                 base_model: str | None, folder: Path):
    from huggingface_hub import DatasetCard, DatasetCardData

    from .train import trl_command

    s = run.config["sample"]
    name = (dataset_id or f"{run.root.name}-samples").split("/")[-1]
    exact = any(f["name"] == "input_ids" for f in info["features"])
    data = DatasetCardData(
        pretty_name=name, task_categories=["text-generation"], language=["en"],
        tags=["simplesd", "ssd", "self-distillation", "code", "synthetic"], size_categories=_size_category(sum(splits.values())),
        configs=[{"config_name": "default", "data_files": [{"split": k, "path": f"data/{k}-*.parquet"} for k in splits]}],
        dataset_info=info)
    stats = read_json(run.filter_dir / "stats.json", default={})
    where = dataset_id or str(folder.resolve())
    base_text = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else f"`{run.base_model}`"
    lines = [
        f"# {name}", "",
        f"Samples of {base_text} on its own prompts, drawn for Simple Self-Distillation ([SSD, arXiv {PAPER[1]}]"
        f"(https://arxiv.org/abs/{PAPER[1]})) by simplesd: T_train {s['temperature']}, top-k {s['top_k']}, top-p "
        f"{s['top_p']}, {s['n']} per prompt, max {s['max_new_tokens']} new tokens, seed {s['seed']}. Unverified: no "
        "sample was run or checked; the filter only dropped empty outputs and the shortest ones."
        + (f" The model trained on them: [{repo_id}](https://huggingface.co/{repo_id})." if repo_id else ""), "",
        "| split | rows | what |", "|---|---:|---|",
        *[f"| {k} | {v} | {'the training set of the SSD model' if k == 'train' else 'kept out of training for the lock/fork analysis'} |"
          for k, v in splits.items()], "",
        f"From {stats.get('total', '?')} samples, {stats.get('kept', '?')} kept (dropped: "
        + ", ".join(f"{k} {v}" for k, v in (stats.get("dropped") or {}).items() if v) + f"). Prompts: {_prompt_source(run)}.",
        "", "## Columns", "",
        "| column | what |", "|---|---|",
        "| prompt | the context the model was given (chat messages) |",
        "| completion | its sample (one assistant message) |",
        *(["| input_ids | the token ids the sampler fed the model, then the ids it drew (its stop token last only when it "
           "stopped by itself) |",
           "| completion_mask | 1 on the drawn ids: the loss is on the sample only |"] if exact else []),
        "| prompt_id, sample_index | which problem, which of its samples |",
        "| finish_reason | stop (ended by itself) or length (hit max_new_tokens) |", "",
        "## Train on it", "",
        "```python", "from datasets import load_dataset", "", f'ds = load_dataset("{where}", split="train")', "```", "",
        "With TRL's CLI (the same objective as `ssd train`: "
        + ("the pre-tokenized `input_ids` are trained as they are, the loss on `completion_mask`; "
           if exact else "TRL renders prompt and completion with the chat template, the loss on the completion; ")
        + "these are this run's hyperparameters, and --max_length keeps TRL from truncating at its default):",
        "", "```bash", " ".join(trl_command(run.train_config(), where, model=base_model or run.base_model)), "```", "",
        "## Versions", "", _versions(run), "", "## Citation", "", "```bibtex", CITATION, "```", "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _tuned_generation_config(run: Run, model_out: Path) -> dict | None:
    """generation_config.json at the SSD arm's best T_eval (with the eval section's top-k/top-p/min-p)."""
    tuned = (run.evaluation or {}).get("tuned")
    if not tuned:
        return None
    path = model_out / "generation_config.json"
    gen = read_json(path, default={})
    e, t = run.config["eval"], float(tuned["best_temperature"])
    if t > 0:
        gen.update(do_sample=True, temperature=t, top_k=e["top_k"] or None, top_p=e["top_p"])
        if e.get("min_p"):
            gen["min_p"] = e["min_p"]
    else:
        gen.update(do_sample=False)
        for k in ("temperature", "top_k", "top_p", "min_p"):
            gen.pop(k, None)
    write_json(path, gen)
    return {k: gen.get(k) for k in ("do_sample", "temperature", "top_k", "top_p", "min_p") if k in gen}


def export(run_dir: str | Path, out_dir: str | Path, *, repo_id: str | None = None, dataset_id: str | None = None,
           base_model: str | None = None, dataset: bool = True, overwrite: bool = False) -> dict:
    """Writes OUT/model and OUT/dataset (module docstring) from a finished run; returns OUT/export.json's record.
    OUT is refused when it holds anything but an earlier export of the same run (unless `overwrite`)."""
    from . import __version__
    from .io import fingerprint_path, output_dir
    from .train import hub_model_id_of

    t0 = time.time()
    run = locate(run_dir)
    out = output_dir(out_dir)
    if out.is_dir() and any(out.iterdir()):
        before = read_json(out / "export.json", default=None)
        if not overwrite and (before is None or Path(before["run"]).resolve() != run.root.resolve()):
            raise InputError(f"{out}: holds other files ({'an export of ' + before['run'] if before else 'not an export'}); "
                             "pick an empty directory, or --overwrite to replace it")
    base_model = base_model or hub_model_id_of(run.base_model)
    if dataset and run.filter_dir is None:
        log.info("export: %s has no filter/ (a bare `ssd train` output): the model only", run.root)
        dataset = False
    if dataset and dataset_id is None and repo_id:
        dataset_id = f"{repo_id}-samples"
    out.mkdir(parents=True, exist_ok=True)
    record = {"run": str(run.root.resolve()), "round": run.dir.name if run.rounds else None,
              "repo_id": repo_id, "dataset_id": dataset_id if dataset else None, "base_model": base_model,
              "train_fingerprint": run.train["fingerprint"], "model_fingerprint": fingerprint_path(run.model_dir),
              "simplesd": __version__}
    with atomic_path(out / "model") as tmp:
        # training_args.bin: transformers' pickled arguments, which the Hub flags (the card and ssd_config.yaml say it)
        shutil.copytree(run.model_dir, tmp, ignore=shutil.ignore_patterns("training_args.bin"))
        record["generation_config"] = _tuned_generation_config(run, tmp)
        if (run.dir / "config.yaml").is_file():
            shutil.copy2(run.dir / "config.yaml", tmp / "ssd_config.yaml")
        model_card(run, tmp, repo_id, dataset_id if dataset else None, base_model, out / "model").save(tmp / "README.md")
    record["model_files"] = sorted(str(p.relative_to(out / "model")) for p in (out / "model").rglob("*") if p.is_file())
    if dataset:
        with atomic_path(out / "dataset") as tmp:
            tmp.mkdir()
            record["dataset_rows"], info = write_dataset(run, tmp)
            dataset_card(run, record["dataset_rows"], info, repo_id, dataset_id, base_model, out / "dataset").save(tmp / "README.md")
    else:
        remove_path(out / "dataset")
    record["seconds"] = round(time.time() - t0, 3)
    write_json(out / "export.json", record)
    return record


def push(run_dir: str | Path, repo_id: str, *, dataset_id: str | None = None, private: bool = False,
         base_model: str | None = None, dataset: bool = True, staging: str | Path | None = None,
         token: str | None = None, echo=print) -> dict:
    """`export` into `staging` (default RUN/hub), then huggingface_hub's create_repo + upload_folder for the model
    and the dataset repo (created private when `private`; an existing repo keeps its visibility)."""
    from huggingface_hub import HfApi, constants

    staging = Path(staging or Path(run_dir) / "hub")
    record = export(run_dir, staging, repo_id=repo_id, dataset_id=dataset_id, base_model=base_model, dataset=dataset,
                    overwrite=(staging / "export.json").is_file())
    api = HfApi(token=token)
    urls = {}
    targets = [("model", repo_id, staging / "model")]
    if record.get("dataset_id"):
        targets.append(("dataset", record["dataset_id"], staging / "dataset"))
    for kind, rid, folder in targets:
        echo(f"push: {folder} -> {constants.ENDPOINT}/{'datasets/' if kind == 'dataset' else ''}{rid}")
        try:
            api.create_repo(rid, repo_type=kind, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=rid, repo_type=kind, folder_path=str(folder),
                                     commit_message=f"SSD {kind} from simplesd ({Path(record['run']).name})")
        except Exception as e:
            raise _push_error(e, rid, staging) from None
        urls[kind] = getattr(info, "commit_url", None) or str(info)
    record["pushed"] = urls
    write_json(staging / "export.json", record)
    return record


def check_can_push(cfg) -> None:
    """train.push_to_hub, checked before the hours of work it follows: a token must be there (huggingface_hub's
    HF_TOKEN or `hf auth login`); whether it may write is the Hub's answer at the end."""
    if cfg.train.push_to_hub:
        from huggingface_hub import get_token

        if not get_token():
            raise InputError("config key 'train.push_to_hub': no Hugging Face token here (set HF_TOKEN or run "
                             "`hf auth login`), or push later with `ssd push RUN_DIR --repo-id ...`")


def push_configured(cfg, run_dir: str | Path, echo=print) -> dict:
    """train.push_to_hub: `push` to train.hub_model_id (and hub_dataset_id), as the config says."""
    t = cfg.train
    record = push(run_dir, t.hub_model_id, dataset_id=t.hub_dataset_id or None, private=t.hub_private_repo, echo=echo)
    for kind, url in record["pushed"].items():
        echo(f"push: {kind} {url}")
    return record


def _push_error(e: Exception, repo_id: str, staging: Path) -> Exception:
    """One line for a failed upload: a missing or read-only token is the user's to fix (InputError, exit 2);
    anything else (offline, the Hub down) is a failure to retry (exit 1). The files stay in `staging`."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    why = " ".join(str(e).split())[:300]
    again = f"the files are in {staging}; `ssd push` again, or `hf upload {repo_id} {staging}/model`"
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, LocalTokenNotFoundError) or (isinstance(e, HfHubHTTPError) and status in (401, 403)):
        return InputError(f"push to {repo_id}: the Hub refused the token ({why}); set HF_TOKEN to a token with write "
                          f"access or run `hf auth login`; {again}")
    return StageFailed(f"push to {repo_id}: {type(e).__name__}: {why}; {again}")


def summary_lines(record: dict) -> list[str]:
    """The console lines after an export or push."""
    out = [f"model: {len(record['model_files'])} files" + (f", generation_config {json.dumps(record['generation_config'])}"
                                                           if record.get("generation_config") else "")]
    if record.get("dataset_rows"):
        out.append("dataset: " + ", ".join(f"{k} {v} rows" for k, v in record["dataset_rows"].items()))
    return out
