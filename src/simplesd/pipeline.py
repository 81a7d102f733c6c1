"""`ssd run`: sample -> filter -> train (-> evaluate base and tuned when eval.benchmark is set) -> analyze ->
report, one sub-directory per stage.

Each stage writes its own manifest and is skipped on rerun when its outputs are complete and its config and
inputs are unchanged, so a rerun after a crash resumes where the run stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .config import SSDConfig, to_dict, to_yaml
from .filter import filter_samples
from .io import atomic_write_text, write_json
from .sample import sample
from .train import train

log = logging.getLogger(__name__)

EVAL_MISSING = (
    "evaluation: no benchmark configured (set eval.benchmark and eval.problems), so `ssd run` stops after "
    "training. The tuned model is at {model}; `ssd evaluate --model {model} ...` grades it later."
)


def run(cfg: SSDConfig, progress: bool = True, echo=print, report: bool = True) -> dict:
    """`report=False` leaves report.html to a caller that adds to the run directory first (`ssd demo`)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", to_yaml(cfg))
    stages: dict[str, dict] = {}
    t0 = time.time()

    steps = 5 if cfg.eval.benchmark else 3
    echo(f"[1/{steps}] sample  -> {out / 'sample'}")
    stages["sample"] = sample(cfg, out / "sample", progress=progress)
    echo(f"[2/{steps}] filter  -> {out / 'filter'}")
    stages["filter"] = filter_samples(out / "sample", cfg.filter, out / "filter")
    echo(f"[3/{steps}] train   -> {out / 'train'}")
    stages["train"] = train(cfg, out / "filter" / "train.jsonl", out / "train", progress=progress)
    tuned = out / "train" / "model"
    evaluation = None
    if cfg.eval.benchmark:
        from .evaluate import compare_runs, evaluate

        results = {}
        for i, (name, model) in enumerate((("base", cfg.model.name_or_path), ("tuned", str(tuned))), start=4):
            echo(f"[{i}/{steps}] evaluate {name} on {cfg.eval.benchmark} -> {out / 'eval' / name}")
            results[name] = evaluate(cfg, model, out / "eval" / name, progress=progress)
        evaluation = {**results, "best_vs_best_pass@1": compare_runs(out / "eval" / "base", out / "eval" / "tuned")}
        write_json(out / "eval" / "comparison.json", evaluation)
        d = evaluation["best_vs_best_pass@1"]
        echo(f"pass@1 base {results['base']['best_pass@1']['value']:.4f} (T {results['base']['best_temperature']}), "
             f"SSD {results['tuned']['best_pass@1']['value']:.4f} (T {results['tuned']['best_temperature']}): "
             f"difference {d['difference']:+.4f} (95% CI {d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f}, "
             f"{d['problems']} problems)")
    else:
        echo(EVAL_MISSING.format(model=tuned))
    if stages["filter"]["counts"].get("held_out"):
        from .analyze import analyze

        echo(f"analyze: base vs tuned on {stages['filter']['counts']['held_out']} held-out samples -> {out / 'analysis'}")
        stages["analyze"] = analyze(cfg, cfg.model.name_or_path, str(tuned), out / "filter" / "heldout.jsonl",
                                    out / "analysis", progress=progress)
        echo(f"analyze: {_statement(out / 'analysis')}")
    else:
        echo("analyze: skipped (filter.holdout_fraction is 0, so no sample is held out of training)")

    summary = {
        "output_dir": str(out),
        "tuned_model": str(tuned),
        "config": to_dict(cfg),
        "evaluated": evaluation is not None,
        "evaluation": evaluation,
        "stages": {
            name: {"counts": m["counts"], "timings_s": m["timings_s"], "fingerprint": m["fingerprint"]}
            for name, m in stages.items()
        },
        "wall_s": round(time.time() - t0, 3),
    }
    write_json(out / "run.json", summary)
    if report:
        from .report import write_report

        echo(f"report: {write_report(out)[0]}")
    return summary


def _statement(analysis_dir: Path) -> str:
    import json

    return json.loads((analysis_dir / "summary.json").read_text())["findings"]["statement"]
