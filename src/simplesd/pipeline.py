"""`ssd run`: sample -> filter -> train (-> evaluate base and tuned when eval.benchmark is set) -> analyze ->
report, one sub-directory per stage; with `pipeline.rounds` > 1 (`ssd run --rounds N`), iterative SSD: one such
run per round in `round-R/`, round r sampling from round r-1's model, until the gain stops.

Each stage writes its own manifest and is skipped on rerun when its outputs are complete and its config and
inputs are unchanged, so a rerun after a crash resumes where the run stopped.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from pathlib import Path

from .config import SSDConfig, reads, to_dict, write_config
from .evaluate import preflight
from .filter import filter_samples
from .io import output_dir, read_json, write_json
from .prompts import prompt_story
from .sample import sample
from .train import train

log = logging.getLogger(__name__)

EVAL_MISSING = (
    "evaluation: no benchmark configured (set eval.benchmark and eval.problems), so `ssd run` stops after "
    "training. The tuned model is at {model}; `ssd evaluate --model {model} ...` grades it later."
)


def _record_config(cfg: SSDConfig, out: Path, final: bool) -> None:
    """OUT/config.yaml: written at the start of a new run, and at the end of one that ran to completion (a rerun
    that a stage refuses leaves the old run's config in place)."""
    path = out / "config.yaml"
    if final or not path.is_file():
        write_config(cfg, path)


@reads("model", "prompts", "sample", "filter", "train", "eval", "analyze", "pipeline", "output_dir")
def run_round(cfg: SSDConfig, *, progress: bool = True, overwrite: bool = False, echo=print, report: bool = True,
              train_from: str | None = None) -> dict:
    """One round of SSD into cfg.output_dir: sample -> filter -> train (-> evaluate base and tuned) -> analyze ->
    report. `overwrite`: stages whose directory holds work of another config or other inputs start over (without
    it, such a stage is an error listing the differences); stages with the same config are reused either way.
    `report=False` leaves report.html to a caller that adds to the run directory first (`ssd demo`).
    `train_from` fine-tunes another model than the one sampled from (iterative SSD with round_init=base)."""
    out = output_dir(cfg.output_dir, "output_dir")
    stages: dict[str, dict] = {}
    t0 = time.time()

    from .evaluate import control_arm, control_config

    control = control_arm(cfg)
    steps = (6 if control else 5) if cfg.eval.benchmark else 3
    echo(f"checks: {cfg.model.name_or_path}'s files, config and tokenizer"
         f"{', the grading sandbox' if cfg.eval.benchmark else ''} (before any long stage)")
    preflight(cfg, cfg.model.name_or_path, echo)
    from .share import check_can_push
    from .trackers import check_installed

    check_installed(cfg)
    check_can_push(cfg)
    out.mkdir(parents=True, exist_ok=True)
    _record_config(cfg, out, final=False)
    echo(f"[1/{steps}] sample  -> {out / 'sample'}")
    stages["sample"] = sample(cfg, out / "sample", progress=progress, overwrite=overwrite)
    if stages["sample"].get("prompts"):
        echo(f"        prompts: {prompt_story(stages['sample']['prompts'])} ({out / 'sample' / 'prompts.json'})")
    echo(f"[2/{steps}] filter  -> {out / 'filter'}")
    stages["filter"] = filter_samples(cfg, out / "sample", out / "filter", overwrite=overwrite)
    echo(f"[3/{steps}] train   -> {out / 'train'}")
    tcfg = cfg
    if train_from and train_from != cfg.model.name_or_path:
        tcfg = copy.deepcopy(cfg)
        tcfg.model.name_or_path = train_from
    stages["train"] = train(tcfg, out / "filter" / "train.jsonl", out / "train", progress=progress, overwrite=overwrite,
                            push=False)  # (pushed by `run`, once evaluated)
    tuned = out / "train" / "model"
    evaluation = None
    if cfg.eval.benchmark:
        from .evaluate import compare_arms, evaluate
        from .sampling.control import describe

        arms = [("base", cfg.model.name_or_path, cfg, "base")]
        if control:
            ccfg = control_config(cfg)
            arms.append(("control", cfg.model.name_or_path, ccfg,
                         f"control (the base, {describe(ccfg.eval.to_decoding(1.0, cfg.sample).control)})"))
        arms.append(("tuned", str(tuned), cfg, "SSD"))
        results = {}
        for i, (name, model, acfg, label) in enumerate(arms, start=4):
            echo(f"[{i}/{steps}] evaluate {label} on {cfg.eval.benchmark} -> {out / 'eval' / name}")
            results[name] = evaluate(acfg, model, out / "eval" / name, progress=progress, overwrite=overwrite,
                                     check_first=False, greedy_from=out / "eval" / "base" if name == "control" else None)
        evaluation = {**results, **compare_arms(out / "eval", [1])}
        write_json(out / "eval" / "comparison.json", evaluation)
        for line in arms_lines(evaluation):
            echo(line)
    else:
        echo(EVAL_MISSING.format(model=tuned))
    if stages["filter"]["counts"].get("held_out"):
        from .analyze import analyze

        echo(f"analyze: base vs tuned on {stages['filter']['counts']['held_out']} held-out samples -> {out / 'analysis'}")
        stages["analyze"] = analyze(cfg, cfg.model.name_or_path, str(tuned), out / "filter" / "heldout.jsonl",
                                    out / "analysis", progress=progress, overwrite=overwrite)
        echo(f"analyze: {_statement(out / 'analysis')}")
    else:
        echo("analyze: skipped (filter.holdout_fraction is 0, so no sample is held out of training)")
    _log_to_trackers(stages, out, evaluation, echo)

    summary = {
        "output_dir": str(out),
        "tuned_model": str(tuned),
        "trained_from": train_from or cfg.model.name_or_path,
        "config": to_dict(cfg),
        "prompts": stages["sample"].get("prompts"),  # read, duplicates, contaminated (dropped or kept), selected
        "evaluated": evaluation is not None,
        "evaluation": evaluation,
        "stages": {
            name: {"counts": m["counts"], "timings_s": m["timings_s"], "fingerprint": m["fingerprint"]}
            for name, m in stages.items()
        },
        "wall_s": round(time.time() - t0, 3),
    }
    write_json(out / "run.json", summary)
    _record_config(cfg, out, final=True)
    if report:
        from .report import write_report

        echo(f"report: {write_report(out)[0]}")
    return summary


def _log_to_trackers(stages: dict, out: Path, evaluation: dict | None, echo) -> None:
    """The evaluation and analysis summaries into the tracker runs the training logged to (train.report_to)."""
    from .trackers import log_summaries

    findings = read_json(out / "analysis" / "summary.json")["findings"] if "analyze" in stages else None
    text = "\n".join(arms_lines(evaluation) if evaluation else []) + (f"\nanalysis: {findings['statement']}" if findings else "")
    done = log_summaries(stages["train"], out / "train", evaluation, findings, text.strip())
    if done:
        echo(f"trackers: results logged to {', '.join(done)} (the training's run)")


def arms_lines(evaluation: dict, k: int = 1) -> list[str]:
    """The console's verdict: each arm's best pass@k, SSD - base and SSD - control (paired, each at its best T)."""
    names = {"base": "base", "control": "control", "tuned": "SSD"}
    out = ["pass@1 at each arm's best T_eval: " + ", ".join(
        f"{names[n]} {evaluation[n]['best_pass@1']['value']:.4f} (T {evaluation[n]['best_temperature']})"
        for n in names if n in evaluation)]
    for key, what in ((f"best_vs_best_pass@{k}", "SSD - base"), (f"ssd_vs_control_pass@{k}", "SSD - control")):
        d = evaluation.get(key)
        if d:
            out.append(f"{what}: {d['difference']:+.4f} pass@{k} (95% CI {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}, "
                       f"paired over {d['problems']} problems)")
    return out


def _statement(analysis_dir: Path) -> str:
    return read_json(analysis_dir / "summary.json")["findings"]["statement"]


@reads("model", "prompts", "sample", "filter", "train", "eval", "analyze", "pipeline", "output_dir")
def run(cfg: SSDConfig, *, progress: bool = True, overwrite: bool = False, echo=print) -> dict:
    """Iterative SSD: `pipeline.rounds` runs in OUT/round-1, round-2, ...; round r samples from round r-1's
    model (the base for round 1), fine-tunes it (or the base: pipeline.round_init), evaluates it against the
    model it sampled from, and the rounds stop once that gain is below pipeline.min_gain. Writes OUT/rounds.json
    and OUT/report.html (pass@k per round). One round is exactly `ssd run`."""
    result = _run_rounds(cfg, progress, overwrite, echo)
    if cfg.train.push_to_hub:
        from .share import push_configured

        push_configured(cfg, cfg.output_dir, echo=echo)
    return result


def _run_rounds(cfg: SSDConfig, progress: bool, overwrite: bool, echo) -> dict:
    pl = cfg.pipeline
    if pl.rounds == 1:
        return run_round(cfg, progress=progress, overwrite=overwrite, echo=echo)
    out = output_dir(cfg.output_dir, "output_dir")
    out.mkdir(parents=True, exist_ok=True)
    _record_config(cfg, out, final=False)
    base = cfg.model.name_or_path
    model, rounds, stop = base, [], None
    for r in range(1, pl.rounds + 1):
        rcfg = copy.deepcopy(cfg)
        rcfg.output_dir = str(out / f"round-{r}")
        rcfg.model.name_or_path = model
        rcfg.pipeline.rounds = 1
        if pl.round_prompts == "fresh":
            rcfg.prompts.offset = cfg.prompts.offset + (r - 1) * cfg.prompts.max_prompts
        previous = out / f"round-{r - 1}" / "eval" / "tuned"
        if cfg.eval.benchmark and r > 1 and previous.is_dir() and not (Path(rcfg.output_dir) / "eval" / "base").exists():
            # the model this round samples from was graded as last round's result: same model, same problems,
            # same settings, so the copy's fingerprints hold and it is not graded again
            shutil.copytree(previous, Path(rcfg.output_dir) / "eval" / "base")
        echo(f"== round {r}/{pl.rounds}: sample from {model}, fine-tune {'the base' if pl.round_init == 'base' else 'it'}")
        summary = run_round(rcfg, progress=progress, overwrite=overwrite, echo=echo,
                            train_from=base if pl.round_init == "base" else model)
        rounds.append(_round_row(r, rcfg, summary))
        model = summary["tuned_model"]
        gain = rounds[-1].get("gain")
        if gain is not None and gain["difference"] < pl.min_gain and r < pl.rounds:
            stop = (f"round {r}'s pass@1 gain {gain['difference']:+.4f} over the model it sampled from is below "
                    f"pipeline.min_gain {pl.min_gain:+.4f}: stopped after {r} of {pl.rounds} rounds")
            echo(stop)
            break
    result = {"output_dir": str(out), "base": base, "rounds": rounds, "rounds_run": len(rounds),
              "rounds_planned": pl.rounds, "stopped_early": stop, "final_model": model,
              "settings": to_dict(pl)}
    write_json(out / "rounds.json", result)
    _record_config(cfg, out, final=True)
    from .report import write_report

    echo(f"report: {write_report(out)[0]}")
    return result


def _round_row(r: int, rcfg: SSDConfig, summary: dict) -> dict:
    """One line of rounds.json: what the round sampled from and trained, and how both models scored."""
    row = {"round": r, "sampled_from": rcfg.model.name_or_path, "trained_from": summary["trained_from"],
           "model": summary["tuned_model"], "prompts_offset": rcfg.prompts.offset,
           "samples": summary["stages"]["sample"]["counts"]["samples"],
           "kept": summary["stages"]["filter"]["counts"].get("kept")}
    ev = summary.get("evaluation")
    if ev:
        for name in ("base", "control", "tuned"):
            if name in ev:
                row[name] = {"best_temperature": ev[name]["best_temperature"],
                             "pass@k": ev[name]["by_temperature"][ev[name]["best_temperature"]],
                             "best_pass@1": ev[name]["best_pass@1"]}
        row["gain"] = ev["best_vs_best_pass@1"]
        if "ssd_vs_control_pass@1" in ev:
            row["gain_over_control"] = ev["ssd_vs_control_pass@1"]
    return row
