"""`ssd demo`: SSD on the shipped testbed model, offline, through the same `ssd run` pipeline as real models.

1. Verify the shipped base (file checksums against its build manifest) and re-create the task splits it was
   built with (hash-checked against the manifest): SSD prompts, dev, test.
2. `ssd run`: sample the SSD prompts at the paper's T_train 1.5 / top-k 20 / top-p 0.8, filter (empty,
   shortest 10 %), fine-tune, then evaluate base and SSD on the test split over the same T_eval sweep.
3. Testbed-only diagnostics: the share of correct self-samples, greedy failure kinds (loops, skips,
   truncation), what a prior alone scores (identity and constant programs), combinations unseen in
   pretraining, wall time of every stage.
4. Why: `ssd analyze` on the held-out self-samples (as `ssd run` does for any model) and on the evaluation
   split's reference solutions, whose ground-truth lock/fork spans score the lock/fork rule; then `ssd report`.

Every knob below was chosen on the dev split (see docs/testbed.md); the demo reports the test split.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections import Counter
from pathlib import Path

from ..config import SSDConfig, apply_mapping, read_yaml, validate
from ..io import InputError, atomic_write_jsonl, read_json, read_jsonl, write_json
from .artefacts import SETTINGS, resolve_base, shipped_base, shipped_bases, verify_base, write_splits

DEMO_YAML = SETTINGS / "demo.yaml"
_SECTIONS = {"ssd", "quick", "ablation"}


def demo_settings(path: str | Path | None = None) -> dict:
    """demo.yaml's sections (ssd, quick, ablation), with those of the file at `path` merged on top key by key."""
    merged: dict = {}
    for f in [DEMO_YAML] + ([Path(path)] if path else []):
        data = read_yaml(f) or {}
        if not isinstance(data, dict) or set(data) - _SECTIONS:
            extra = sorted(set(data) - _SECTIONS) if isinstance(data, dict) else data
            raise InputError(f"{f}: a demo config has the sections ssd, quick and ablation, got {extra!r}")
        for part in (data.get("ssd"), (data.get("quick") or {}).get("ssd"), (data.get("ablation") or {}).get("ssd")):
            if part is not None:  # checked here, so a bad key names its file before any work
                if not isinstance(part, dict):
                    raise InputError(f"{f}: an ssd section is a mapping of config keys, got {part!r}")
                apply_mapping(SSDConfig(), part, str(f))
        merged = _merge(merged, {**data, "_files": [*merged.get("_files", []), str(f)]})
    return merged


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def demo_config(output_dir: str | Path, base: str | Path, data: dict[str, Path], quick: bool = False,
                ablation: bool = False, settings: dict | None = None) -> SSDConfig:
    """The demo's run config: demo.yaml's `ssd` section (then `quick`'s and `ablation`'s when asked), with the model
    and the data files filled in."""
    settings = settings or demo_settings()
    cfg = SSDConfig()
    where = " + ".join(settings["_files"])
    parts = [settings.get("ssd", {})] + ([settings.get("quick", {}).get("ssd", {})] if quick else []) \
        + ([settings.get("ablation", {}).get("ssd", {})] if ablation else [])
    for part in parts:
        apply_mapping(cfg, part, where)
    cfg.output_dir = str(output_dir)
    cfg.model.name_or_path = str(base)
    cfg.prompts.path, cfg.eval.problems = str(data["ssd"]), str(data["test"])
    return validate(cfg)


def write_testbed_config(out_dir: str | Path, quick: bool = False, split: str = "dev", config: str | None = None) -> Path:
    """OUT/{ssd,dev,test}.jsonl and OUT/testbed.yaml: the demo's settings (demo.yaml, `config` on top) as a config any
    command takes."""
    from ..config import write_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = shipped_base()
    data = write_splits(verify_base(base), out)
    cfg = demo_config(out / "run", base, data, quick=quick, settings=demo_settings(config))
    cfg.eval.problems = str(data[split])
    write_config(cfg, out / "testbed.yaml")
    return out / "testbed.yaml"


# ---------------------------------------------------------------------------------------------------------
# Testbed diagnostics


def _records(path: Path) -> dict[str, dict]:
    return {r["question_id"]: r for _, r in read_jsonl(path)}


def self_sample_correctness(run_dir: Path, problems_path: Path, cfg: SSDConfig, progress: bool) -> dict:
    """Grades the SSD samples (which SSD never does) to show what the model was trained on."""
    from ..evaluate import grade
    from ..execute.benchmarks import load_benchmark
    from ..sample import iter_samples

    problems = load_benchmark("livecodebench", str(problems_path))
    records = [r for _, r in iter_samples(run_dir / "sample")]
    samples = [(r.prompt_id, r.output) for r in records]
    rows, _ = grade([p for p in problems if p.task_id in {t for t, _ in samples}], samples, cfg.eval, progress)
    kept = {(r["messages"][0]["content"], r["messages"][1]["content"])
            for _, r in read_jsonl(run_dir / "filter" / "train.jsonl")}
    kept_correct = sum(row.passed and (r.prompt, r.output) in kept for r, row in zip(records, rows))
    correct = sum(r.passed for r in rows)
    return {"samples": len(rows), "correct": correct, "share_correct": correct / len(rows),
            "kept": len(kept), "kept_correct": kept_correct, "share_kept_correct": kept_correct / max(len(kept), 1)}


def failure_kinds(eval_dir: Path, records: dict[str, dict], temperature: str = "0") -> dict:
    from ..evaluate import read_verdicts
    from ..sample import iter_samples
    from .tasks import failure_kind

    tdir = eval_dir / f"T{temperature}"
    verdicts = read_verdicts(tdir / "verdicts.jsonl")
    samples = [r for _, r in iter_samples(tdir / "samples")]
    kinds = Counter(failure_kind(records[s.prompt_id], s.output, s.finish_reason, v.verdict)
                    for s, v in zip(samples, verdicts))
    return dict(sorted(kinds.items()))


def prior_scores(problems_path: Path, cfg: SSDConfig) -> dict:
    """pass@1 of programs that know the family but not the problem (identity, constant)."""
    from ..evaluate import grade
    from ..execute.benchmarks import load_benchmark
    from .tasks import prior_baselines

    problems = load_benchmark("livecodebench", str(problems_path))
    base = prior_baselines(list(_records(problems_path).values()))
    out = {}
    for name in ("identity", "constant"):
        rows, _ = grade(problems, [(p.task_id, base[p.task_id][name]) for p in problems], cfg.eval, progress=False)
        out[name] = sum(r.passed for r in rows) / len(rows)
    return out


def unseen_pair_scores(eval_dir: Path, records: dict[str, dict], temperature: str) -> dict:
    from ..evaluate import read_verdicts

    rows = read_verdicts(eval_dir / f"T{temperature}" / "verdicts.jsonl")
    out = {}
    for flag in (True, False):
        sel = [r.passed for r in rows if records[r.task_id]["testbed"]["unseen_pair"] is flag]
        out["unseen" if flag else "seen"] = {"pass@1": sum(sel) / len(sel) if sel else None, "samples": len(sel)}
    return out


def _eval_table(eval_dir: Path) -> dict:
    res = read_json(eval_dir / "results.json")
    table = {}
    for t in res["by_temperature"]:
        s = read_json(eval_dir / f"T{t}" / "summary.json")
        table[t] = {k: {"value": v["value"], "ci95": v["ci95"]} for k, v in s["overall"].items()
                    if k in ("pass@1", "pass@5")}
        table[t]["by_difficulty_pass@1"] = {d: v["pass@1"]["value"] for d, v in s["by_difficulty"].items()}
    return {"by_temperature": table, "best_temperature": res["best_temperature"]}


def reference_texts(problems_path: Path, out_path: Path) -> Path:
    """Every reference solution of the evaluation split as an analysis text with its ground-truth lock/fork
    spans (the prompt is the one sampling renders)."""
    from ..prompts import problem_from_record, user_prompt

    rows = []
    for i, (_, rec) in enumerate(read_jsonl(problems_path)):
        user = user_prompt(problem_from_record(rec, "livecodebench", f"{problems_path}:{i + 1}", i))
        for ref in rec["testbed"]["references"]:
            rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": ref["response"]}],
                         "spans": ref["spans"], "prompt_id": f"{rec['question_id']}/{ref['style']}"})
    atomic_write_jsonl(out_path, rows)
    return out_path


def _stage_times(run_dir: Path) -> dict:
    out = {}
    for stage in ("sample", "filter", "train"):
        m = read_json(run_dir / stage / "manifest.json")
        out[stage] = round(m["timings_s"]["total"], 1)
    from ..evaluate import eval_seconds

    for name in ("base", "control", "tuned"):
        if (run_dir / "eval" / name).is_dir():
            out[f"evaluate_{name}"] = round(eval_seconds(run_dir / "eval" / name, run_dir / "eval" / "base"
                                                         if name == "control" else None), 1)
    for name in ("analysis", "analysis-references"):
        if (run_dir / name / "manifest.json").is_file():
            out[name] = round(read_json(run_dir / name / "manifest.json")["timings_s"]["total"], 1)
    return out


def diagnostics(run_dir: Path, data: dict[str, Path], cfg: SSDConfig, progress: bool) -> dict:
    from ..evaluate import compare_runs

    records = _records(data["test"])
    eval_dir = run_dir / "eval"
    out = {"base": _eval_table(eval_dir / "base"), "ssd": _eval_table(eval_dir / "tuned")}
    ks = [1, 5] if cfg.eval.n >= 5 else [1]
    out["best_vs_best"] = {f"pass@{k}": compare_runs(eval_dir / "base", eval_dir / "tuned", k) for k in ks}
    if (eval_dir / "control" / "results.json").is_file():  # the no-training control: a decoding rule on the base
        from ..evaluate import control_config
        from ..sampling.control import describe

        out["control"] = {**_eval_table(eval_dir / "control"),
                          "decoding": describe(control_config(cfg).eval.to_decoding(1.0, cfg.sample).control)}
        out["ssd_vs_control"] = {}
        out["control_vs_base"] = {}
        for k in ks:
            d = compare_runs(eval_dir / "control", eval_dir / "tuned", k)
            out["ssd_vs_control"][f"pass@{k}"] = {"control_T": d.pop("base_T"), **d}
            d = compare_runs(eval_dir / "base", eval_dir / "control", k)
            out["control_vs_base"][f"pass@{k}"] = {"base_T": d["base_T"], "control_T": d.pop("tuned_T"), **d}
    greedy = "0" if "0" in out["base"]["by_temperature"] else None
    if greedy:
        out["greedy_failure_kinds"] = {"base": failure_kinds(eval_dir / "base", records),
                                       "ssd": failure_kinds(eval_dir / "tuned", records)}
    out["unseen_pairs_at_best_T"] = {
        "base": unseen_pair_scores(eval_dir / "base", records, out["base"]["best_temperature"]),
        "ssd": unseen_pair_scores(eval_dir / "tuned", records, out["ssd"]["best_temperature"])}
    out["self_samples"] = self_sample_correctness(run_dir, Path(cfg.prompts.path), cfg, progress)
    out["prior_only_pass@1"] = prior_scores(data["test"], cfg)
    out["stage_seconds"] = _stage_times(run_dir)
    return out


# ---------------------------------------------------------------------------------------------------------


def demo(output_dir: str = "runs/demo", quick: bool = False, ablation: bool = False, base: str | None = None,
         split: str = "test", overrides: list[str] = (), progress: bool = True, overwrite: bool = False,
         echo=print, config: str | None = None) -> dict:
    """`split="dev"` and `overrides` (config `key=value`s) are how the demo's knobs were chosen: on dev. `config`: a
    demo YAML file read on top of demo.yaml. `overwrite`: stages holding another config's work (an earlier `--quick`
    run in the same directory) start over."""
    from ..analyze import analyze
    from ..config import load_config
    from ..io import output_dir as writable_dir
    from ..pipeline import run_round
    from ..report import write_report

    t0 = time.time()
    out = writable_dir(output_dir)
    settings = demo_settings(config)  # a bad demo config fails before any work
    base_name, base_dir, why = resolve_base(base)
    manifest = verify_base(base_dir)
    echo(f"base: {base_name} = {base_dir} ({manifest['parameters']:,} parameters, pretrained "
         f"{manifest['pretrain']['optimizer_steps']} steps; dev greedy pass@1 {manifest['dev_greedy_pass@1']:.3f} at "
         f"build time)\n      why this base: {why}")
    data = write_splits(manifest, out / "data")
    if split not in ("test", "dev"):
        raise InputError(f"--split: expected test or dev, got {split!r}")
    data = {**data, "test": data[split]}
    if quick:
        quick_test = out / "data" / "test_quick.jsonl"
        size = settings["quick"]["test_problems"]
        atomic_write_jsonl(quick_test, [r for _, r in list(read_jsonl(data["test"]))[:size]])
        data = {**data, "test": quick_test}
    cfg = load_config(None, list(overrides), base=demo_config(out, base_dir, data, quick=quick, settings=settings))
    run_round(copy.deepcopy(cfg), progress=progress, overwrite=overwrite, echo=echo, report=False)
    echo(f"analyze: base vs SSD on the {split} split's reference solutions (ground-truth spans) -> "
         f"{out / 'analysis-references'}")
    analyze(cfg, str(base_dir), str(out / "train" / "model"),
            reference_texts(data["test"], out / "data" / "references.jsonl"), out / "analysis-references",
            progress=progress, overwrite=overwrite)
    results = {"base_model": str(base_dir), "base_name": base_name, "base_why": why,
               "build": {k: manifest[k] for k in ("parameters", "pretrain", "dev_greedy_pass@1", "dev_greedy_outcomes",
                                                  "snapshot_of") if k in manifest},
               "quick": quick, "eval_split": split, "overrides": list(overrides), "settings": settings["_files"],
               "config": str(out / "config.yaml"), "test_problems": sum(1 for _ in read_jsonl(data["test"])),
               **diagnostics(out, data, cfg, progress)}
    if ablation:
        abl_dir = out / "ablation"
        if not (abl_dir / "eval" / "base").exists():  # the base's evaluation is the same: reuse it (skipped as done)
            shutil.copytree(out / "eval" / "base", abl_dir / "eval" / "base")
        acfg = load_config(None, list(overrides), base=demo_config(abl_dir, base_dir, data, quick=quick, ablation=True,
                                                                   settings=settings))
        echo("ablation: T_train 2.0, no truncation (top-k off, top-p 1.0)")
        run_round(copy.deepcopy(acfg), progress=progress, overwrite=overwrite, echo=echo)
        results["ablation"] = diagnostics(abl_dir, data, acfg, progress)
    results["analysis"] = {name: read_json(out / name / "summary.json")["findings"]
                           for name in ("analysis", "analysis-references") if (out / name / "summary.json").is_file()}
    results["rule_vs_ground_truth"] = read_json(out / "analysis-references" / "summary.json")["agreement"]
    results["wall_s"] = round(time.time() - t0, 1)
    write_json(out / "results.json", results)
    for line in render(results):
        echo(line)
    echo(f"report: {write_report(out)[0]}")
    return results


def _fmt(x) -> str:
    return "   -  " if x is None else f"{x:.3f}"


def render(r: dict) -> list[str]:
    title = (f"SSD on the testbed ({r['test_problems']} {r['eval_split']} problems; base {r.get('base_name', '')} "
             f"built with {r['build']['parameters']:,} parameters){' [quick]' if r['quick'] else ''}")
    arms = [("base", "base"), *([("control", "control")] if "control" in r else []), ("ssd", "SSD")]
    lines = ["", title, "", "T_eval  " + "".join(f"{label + ' pass@1':>15}  {'pass@5':>6}" for _, label in arms)]
    for t in r["base"]["by_temperature"]:
        row = f"{'greedy' if t == '0' else t:<8}"
        for name, _ in arms:
            v = r[name]["by_temperature"].get(t, {})
            row += f"{_fmt(v.get('pass@1', {}).get('value')):>15}  {_fmt(v.get('pass@5', {}).get('value')):>6}"
        lines.append(row)
    lines.append("")
    if "control" in r:
        lines.append(f"control: the base decoded with the no-training rule, {r['control']['decoding']}")
    for k, d in r["best_vs_best"].items():
        lines.append(f"best-vs-best {k}: base (T {d['base_T']}) -> SSD (T {d['tuned_T']}): {d['difference']:+.3f} "
                     f"(95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}, {d['problems']} problems)")
    for k, d in r.get("ssd_vs_control", {}).items():
        lines.append(f"best-vs-best {k}: control (T {d['control_T']}) -> SSD (T {d['tuned_T']}): {d['difference']:+.3f} "
                     f"(95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")
    for k, d in r.get("control_vs_base", {}).items():
        lines.append(f"best-vs-best {k}: base (T {d['base_T']}) -> control (T {d['control_T']}): {d['difference']:+.3f} "
                     f"(95% CI {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})")
    if "ssd_vs_control" in r:
        from ..report import control_verdict

        lines.append(control_verdict(r["best_vs_best"]["pass@1"], r["ssd_vs_control"]["pass@1"]))
    if "greedy_failure_kinds" in r:
        for name, kinds in r["greedy_failure_kinds"].items():
            lines.append(f"greedy outcomes, {name}: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    ss = r["self_samples"]
    lines.append(f"self-samples correct: {ss['correct']}/{ss['samples']} ({ss['share_correct']:.1%}); "
                 f"of those kept for training {ss['share_kept_correct']:.1%}")
    lines.append("a prior alone (no problem read): " + ", ".join(f"{k} program pass@1 {v:.3f}"
                                                               for k, v in r["prior_only_pass@1"].items()))
    u = r["unseen_pairs_at_best_T"]
    lines.append(f"rule pairs unseen in pretraining, pass@1 at best T: base {_fmt(u['base']['unseen']['pass@1'])} "
                 f"(seen {_fmt(u['base']['seen']['pass@1'])}), SSD {_fmt(u['ssd']['unseen']['pass@1'])} "
                 f"(seen {_fmt(u['ssd']['seen']['pass@1'])})")
    lines.append("stage seconds: " + ", ".join(f"{k} {v}" for k, v in r["stage_seconds"].items())
                 + f"; total {r['wall_s']} s")
    for name, f in r.get("analysis", {}).items():
        lines.append(f"{name} (rule classes): {f['statement']}")
    g = r.get("rule_vs_ground_truth")
    if g:
        row = next(x for x in g["by_rule"] if x["rule"] == g["best_kappa"])
        lines.append(f"lock/fork rule vs ground truth ({g['positions']} positions): best rule '{row['rule']}', "
                     f"fork recall {row['fork_recall']:.2f}, lock recall {row['lock_recall']:.2f}, "
                     f"kappa {row['cohen_kappa']:.2f}")
    if "ablation" in r:
        a = r["ablation"]["best_vs_best"]["pass@1"]
        lines.append(f"ablation (T_train 2.0, no truncation): best-vs-best pass@1 {a['difference']:+.3f} "
                     f"(95% CI {a['ci95'][0]:+.3f} to {a['ci95'][1]:+.3f}); SSD best pass@1 at T "
                     f"{r['ablation']['ssd']['best_temperature']}")
        c = r["ablation"].get("ssd_vs_control", {}).get("pass@1")
        if c:
            lines.append(f"ablation SSD - its control ({r['ablation']['control']['decoding']}): {c['difference']:+.3f} "
                         f"(95% CI {c['ci95'][0]:+.3f} to {c['ci95'][1]:+.3f})")
    return lines


# ---------------------------------------------------------------------------------------------------------
# The map: when does SSD help? Every shipped base, the same demo on each.


def demo_map(output_dir: str = "runs/demo-map", quick: bool = False, ablation: bool = False, progress: bool = True,
             overwrite: bool = False, echo=print, config: str | None = None, overrides: list[str] = ()) -> dict:
    """`ssd demo --map`: the demo on every shipped base (OUT/NAME/, each resumable), then OUT/results.json, map.md
    and map.png: per base, its strength (dev and test greedy pass@1, greedy loop and skip rates), the share of
    correct self-samples, SSD - base and SSD - control (pass@1, pass@5, paired 95 % CIs), and the lock tail mass
    and fork entropy before and after. `ablation`: the paper's stress test too, on the weakest base."""
    from ..io import atomic_write_text
    from ..io import output_dir as writable_dir
    from ..plots import map_plot

    out = writable_dir(output_dir)
    _, bases = shipped_bases()
    rows = []
    for i, name in enumerate(bases):
        echo(f"== map: base {name} ({i + 1}/{len(bases)}) -> {out / name}")
        r = demo(str(out / name), quick=quick, base=name, ablation=ablation and i == 0, progress=progress,
                 overwrite=overwrite, echo=echo, config=config, overrides=overrides)
        rows.append(map_row(name, r))
    result = {"bases": rows, "quick": quick, "settings": list(overrides),
              "runs": {n: str(out / n / "results.json") for n in bases}}
    write_json(out / "results.json", result)
    atomic_write_text(out / "map.md", "\n".join(map_table(rows)) + "\n")
    map_plot(rows, out / "map.png")
    for line in map_table(rows):
        echo(line)
    echo(f"map: {out / 'results.json'}, {out / 'map.md'}, {out / 'map.png'}")
    return result


def map_row(name: str, r: dict) -> dict:
    """One base's line of the map, from its demo results."""
    greedy = r.get("greedy_failure_kinds", {}).get("base", {})
    total = sum(greedy.values()) or None
    held = r.get("analysis", {}).get("analysis", {})
    row = {"base": name, "pretrain_steps": r["build"]["pretrain"]["optimizer_steps"],
           "dev_greedy_pass@1": r["build"]["dev_greedy_pass@1"],
           "dev_greedy_outcomes": r["build"].get("dev_greedy_outcomes"),
           "test_greedy_pass@1": r["base"]["by_temperature"].get("0", {}).get("pass@1", {}).get("value"),
           "test_greedy_loop_rate": greedy.get("loop", 0) / total if total else None,
           "test_greedy_skip_rate": greedy.get("skip", 0) / total if total else None,
           "self_samples_correct": r["self_samples"]["share_correct"],
           "ssd_minus_base": {k: _diff(d) for k, d in r["best_vs_best"].items()},
           "ssd_minus_control": {k: _diff(d) for k, d in r.get("ssd_vs_control", {}).items()},
           "control_minus_base": {k: _diff(d) for k, d in r.get("control_vs_base", {}).items()},
           "best_T": {"base": r["base"]["best_temperature"], "control": r.get("control", {}).get("best_temperature"),
                      "ssd": r["ssd"]["best_temperature"]}}
    for key in ("lock_tail_mass", "fork_entropy"):
        f = held.get(key)
        row[key] = {"base": f["base"], "ssd": f["tuned"]} if f else None
    if "ablation" in r:
        row["ablation_ssd_minus_base"] = {k: _diff(d) for k, d in r["ablation"]["best_vs_best"].items()}
        row["ablation_ssd_minus_control"] = {k: _diff(d) for k, d in r["ablation"].get("ssd_vs_control", {}).items()}
    return row


def _diff(d: dict) -> dict:
    return {"difference": d["difference"], "ci95": d["ci95"], "problems": d["problems"]}


def _ci(d: dict | None) -> str:
    if not d:
        return "not measured"
    return f"{d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"


def map_table(rows: list[dict]) -> list[str]:
    """The map as a Markdown table (docs/testbed.md shows the one measured)."""
    head = ["base", "steps", "dev greedy pass@1", "test greedy pass@1", "greedy loops / skips", "self-samples correct",
            "SSD - base pass@1", "SSD - control pass@1", "SSD - base pass@5", "SSD - control pass@5",
            "lock tail mass base -> SSD", "fork entropy base -> SSD"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lt, fe = r["lock_tail_mass"], r["fork_entropy"]
        lines.append("| " + " | ".join([
            r["base"], str(r["pretrain_steps"]), f"{r['dev_greedy_pass@1']:.3f}", _fmt(r["test_greedy_pass@1"]),
            (f"{r['test_greedy_loop_rate']:.1%} / {r['test_greedy_skip_rate']:.1%}"
             if r["test_greedy_loop_rate"] is not None else "not measured"),
            f"{r['self_samples_correct']:.1%}",
            _ci(r["ssd_minus_base"].get("pass@1")), _ci(r["ssd_minus_control"].get("pass@1")),
            _ci(r["ssd_minus_base"].get("pass@5")), _ci(r["ssd_minus_control"].get("pass@5")),
            f"{lt['base']:.4f} -> {lt['ssd']:.4f}" if lt else "not measured",
            f"{fe['base']:.3f} -> {fe['ssd']:.3f}" if fe else "not measured"]) + " |")
    abl = [r for r in rows if "ablation_ssd_minus_base" in r]
    for r in abl:
        lines.append(f"\nAblation (T_train 2.0, no truncation) on base {r['base']}: SSD - base pass@1 "
                     f"{_ci(r['ablation_ssd_minus_base'].get('pass@1'))}, SSD - control pass@1 "
                     f"{_ci(r['ablation_ssd_minus_control'].get('pass@1'))}.")
    return lines
