"""Experiment trackers (`train.report_to`): where the training curves and the run's results are shown.

Training logs reach the trackers through transformers' own callbacks (TRL's `report_to`, as its users set it);
this module checks the trackers are installed before any work, records which tracker run a training logged to
(the train manifest's `trackers`), and, after `ssd run` has evaluated and analysed, logs the evaluation and
analysis summaries into that same run: TensorBoard's event files in OUT/train/tensorboard, the same wandb run
(resumed by its id) and the same trackio run (project and name), at the training's last step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from .config import SSDConfig
from .io import InputError

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
ARM_METRIC_NAMES = {"base": "base", "control": "control", "tuned": "ssd"}  # eval/<name>/... in the trackers


def trackers(cfg: SSDConfig) -> list[str]:
    """The trackers train.report_to turns on ([] for none)."""
    return [t for t in cfg.train.report_to if t != "none"]


def check_installed(cfg: SSDConfig) -> None:
    """Refuses, before any work, a tracker whose package is missing (transformers would fail at the first step)."""
    for name in trackers(cfg):
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise InputError(f"config key 'train.report_to': {name} is not installed (pip install {PACKAGES[name]}), "
                             "or leave it out (train.report_to=tensorboard, or none)")


def run_name(cfg: SSDConfig, out_dir: Path) -> str:
    """train.run_name, else the run's directory name (OUT of `ssd run OUT`, whose training is OUT/train)."""
    out_dir = Path(out_dir).resolve()
    return cfg.train.run_name or (out_dir.parent.name if out_dir.name == "train" else out_dir.name)


def trackio_project() -> str:
    return os.environ.get("TRACKIO_PROJECT", "simplesd")


def runs_of(cfg: SSDConfig, out_dir: Path) -> dict:
    """Which run each tracker logged this training to, for the manifest (and for `log_summaries` later)."""
    out: dict = {"report_to": trackers(cfg), "run_name": run_name(cfg, out_dir)}
    if "tensorboard" in out["report_to"]:
        out["tensorboard"] = "tensorboard"
    if "wandb" in out["report_to"]:
        import wandb

        run = wandb.run
        out["wandb"] = ({"id": run.id, "project": run.project, "entity": run.entity, "url": run.url}
                        if run is not None else None)
    if "trackio" in out["report_to"]:
        out["trackio"] = {"project": trackio_project(), "name": out["run_name"]}
    return out


def summary_metrics(evaluation: dict | None, findings: dict | None) -> dict[str, float]:
    """The run's results as flat scalars: each arm's pass@k per T_eval and at its best T_eval, the paired
    differences with their CIs, and the lock/fork analysis."""
    m: dict[str, float] = {}
    for arm, name in ARM_METRIC_NAMES.items():
        res = (evaluation or {}).get(arm)
        if not res:
            continue
        for t, row in res["by_temperature"].items():
            for k, v in row.items():
                m[f"eval/{name}/{k}/T{t}"] = float(v)
        m[f"eval/{name}/best_pass@1"] = float(res["best_pass@1"]["value"])
        m[f"eval/{name}/best_T_eval"] = float(res["best_temperature"])
    for key, name in (("best_vs_best_pass@1", "ssd_minus_base"), ("ssd_vs_control_pass@1", "ssd_minus_control")):
        d = (evaluation or {}).get(key)
        if d:
            m[f"eval/{name}/pass@1"] = float(d["difference"])
            m[f"eval/{name}/ci95_low"], m[f"eval/{name}/ci95_high"] = map(float, d["ci95"])
    for part in ("lock_tail_mass", "fork_entropy", "lock_entropy"):
        f = (findings or {}).get(part)
        if f:
            for key in ("base", "tuned", "change", "retained"):
                if f.get(key) is not None:
                    m[f"analysis/{part}/{'ssd' if key == 'tuned' else key}"] = float(f[key])
    return m


def log_summaries(train_manifest: dict, train_dir: Path, evaluation: dict | None, findings: dict | None,
                  text: str) -> list[str]:
    """Logs the results into the tracker runs the training used (train manifest's `trackers`), at its last
    step. Returns the trackers written to; a tracker that cannot be reached is warned about, never fatal (the
    results are in the run directory either way)."""
    info = train_manifest.get("trackers") or {}
    metrics = summary_metrics(evaluation, findings)
    step = int(train_manifest["counts"]["optimizer_steps"])
    done = []
    if not metrics:
        return done
    for name in info.get("report_to", []):
        try:
            globals()[f"_log_{name}"](info, Path(train_dir), metrics, text, step)
            done.append(name)
        except Exception as e:  # a tracker's server or login: the run's own files hold the results anyway
            log.warning("WARNING: could not log the results to %s: %s", name, " ".join(str(e).split())[:300])
    return done


def _log_tensorboard(info: dict, train_dir: Path, metrics: dict, text: str, step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(train_dir / info.get("tensorboard", "tensorboard")))
    try:
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
        writer.add_text("results", text, step)
    finally:
        writer.close()


def _log_wandb(info: dict, train_dir: Path, metrics: dict, text: str, step: int) -> None:
    import wandb

    run = wandb.run
    ours = info.get("wandb") or {}
    if run is None or (ours.get("id") and run.id != ours["id"]):
        if run is not None:
            run.finish()
        run = wandb.init(id=ours.get("id"), project=ours.get("project"), entity=ours.get("entity"),
                         name=info.get("run_name"), resume="allow")
    run.summary.update(metrics)
    run.log({**metrics, "results": wandb.Html(f"<pre>{text}</pre>")})


def _log_trackio(info: dict, train_dir: Path, metrics: dict, text: str, step: int) -> None:
    import trackio

    ours = info.get("trackio") or {}
    trackio.init(project=ours.get("project", trackio_project()), name=ours.get("name", info.get("run_name")),
                 resume="allow")
    try:
        trackio.log(metrics, step=step)
    finally:
        trackio.finish()
