"""`ssd sweep`: the paper's T_train x truncation x T_eval interaction study, on your model.

Every grid point (the product of `--grid key=v1,v2,...` settings) is one `ssd run` in OUT/points/<point>/,
evaluated over the same T_eval sweep; the base is evaluated once (OUT/base-eval/) and that evaluation is reused
by every point (same model, problems and decoding settings: its fingerprints hold). Points already done are
skipped, so rerunning the command resumes; `--point I` runs one point only (one cluster job per point, then a
plain `ssd sweep` with the same arguments gathers them). Writes OUT/sweep.json, sweep.csv, sweep.md and a
heatmap sweep.png of the SSD model's best pass@1 per (T_train, truncation), each cell with its best T_eval.
"""

from __future__ import annotations

import copy
import itertools
import shutil
from pathlib import Path

from .config import SSDConfig, apply_override, identity, reads, validate, write_config
from .io import InputError, atomic_write_text, output_dir, read_json, write_json


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """['sample.temperature=1.0,1.5', 'sample.top_p=0.8,1.0'] -> {key: [raw values]} (validated later)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--grid {item!r}: expected key=v1,v2,...")
        key, values = item.split("=", 1)
        vals = [v for v in values.split(",") if v != ""]
        if not vals:
            raise InputError(f"--grid {item!r}: no values")
        if key in grid:
            raise InputError(f"--grid: {key} given twice")
        grid[key.strip()] = vals
    if not grid:
        raise InputError("ssd sweep: give at least one --grid key=v1,v2,...")
    return grid


def point_name(settings: dict[str, str]) -> str:
    return "_".join(f"{k.split('.')[-1]}={v}" for k, v in settings.items())


# the no-training control's settings: a grid of these alone evaluates the control at each point, nothing trained
CONTROL_KEYS = ("eval.control_temperature", "eval.control_top_k", "eval.control_top_p")


def grid_points(cfg: SSDConfig, grid: dict[str, list[str]], out: Path) -> list[tuple[dict[str, str], SSDConfig]]:
    """(settings, config) for every point of the grid, each validated (an error names the key and point)."""
    points = []
    for values in itertools.product(*grid.values()):
        settings = dict(zip(grid, values))
        pcfg = copy.deepcopy(cfg)
        for k, v in settings.items():
            if k.split(".")[0] in ("eval", "output_dir", "pipeline") and k not in CONTROL_KEYS:
                raise InputError(f"--grid {k}: a sweep varies sampling, filtering, training and the control's "
                                 f"settings ({', '.join(CONTROL_KEYS)}); T_eval is --eval-temperatures")
            apply_override(pcfg, f"{k}={v}")
        try:
            validate(pcfg)
        except InputError as e:
            raise InputError(f"grid point {point_name(settings)}: {e}") from None
        pcfg.output_dir = str(out / "points" / point_name(settings))
        pcfg.train.push_to_hub = False  # every point to one Hub repo would overwrite each other: `ssd push` the one you pick
        points.append((settings, pcfg))
    return points


@reads("model", "prompts", "sample", "filter", "train", "eval", "analyze")
def sweep(cfg: SSDConfig, grid: dict[str, list[str]], out_dir: str | Path, *, point: int | None = None,
          progress: bool = True, overwrite: bool = False, echo=print) -> dict | None:
    """Runs the grid's points (or only `point`), then tabulates and plots every finished one. `overwrite` as in
    `run`: a point's stage holding work of another config starts over instead of being refused."""
    from .evaluate import evaluate
    from .pipeline import run

    if not cfg.eval.benchmark:
        raise InputError("ssd sweep compares pass@1 across settings: set eval.benchmark and eval.problems")
    out = output_dir(out_dir)
    points = grid_points(cfg, grid, out)
    if point is not None and not 0 <= point < len(points):
        raise InputError(f"--point {point}: the grid has points 0..{len(points) - 1}")
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / "config.yaml")
    write_json(out / "grid.json", {"grid": grid, "points": [point_name(s) for s, _ in points]})
    echo(f"sweep: {len(points)} points; base evaluated once -> {out / 'base-eval'}")
    if cfg.train.push_to_hub:
        echo(f"sweep: train.push_to_hub is not applied per point (they would overwrite one repo); push the point you "
             f"choose: ssd push {out}/points/<point> --repo-id {cfg.train.hub_model_id}")
    evaluate(cfg, cfg.model.name_or_path, out / "base-eval", progress=progress, overwrite=overwrite)
    todo = range(len(points)) if point is None else [point]
    control_only = all(k in CONTROL_KEYS for k in grid)
    for i in todo:
        settings, pcfg = points[i]
        pdir = Path(pcfg.output_dir)
        if control_only:  # a decoding rule on the base: evaluated, never trained
            from .evaluate import control_config

            echo(f"[point {i + 1}/{len(points)}] control {point_name(settings)} -> {pdir / 'eval' / 'control'}")
            evaluate(control_config(pcfg), cfg.model.name_or_path, pdir / "eval" / "control", progress=progress,
                     overwrite=overwrite, check_first=False, greedy_from=out / "base-eval")
            continue
        done = pdir / "run.json"
        if done.is_file() and identity(read_json(done).get("config") or {}) == identity(pcfg):
            echo(f"[point {i + 1}/{len(points)}] {point_name(settings)}: done, skipped")
            continue
        if not (pdir / "eval" / "base").exists():
            shutil.copytree(out / "base-eval", pdir / "eval" / "base")
        echo(f"[point {i + 1}/{len(points)}] {point_name(settings)} -> {pdir}")
        run(pcfg, progress=progress, overwrite=overwrite, echo=echo)
    if point is not None:
        echo(f"sweep: point {point} done; rerun without --point to tabulate every finished point")
        return None
    return tabulate(out, points, control_only)


def _control_point(out: Path, pcfg: SSDConfig) -> dict:
    """A control-only point as a run's evaluation: the control's results in the `tuned` slot, against the base."""
    from .evaluate import compare_runs

    pdir = Path(pcfg.output_dir) / "eval" / "control"
    return {"tuned": read_json(pdir / "results.json"), "base": read_json(out / "base-eval" / "results.json"),
            "best_vs_best_pass@1": compare_runs(out / "base-eval", pdir)}


def tabulate(out: Path, points: list[tuple[dict[str, str], SSDConfig]], control_only: bool = False) -> dict:
    """sweep.json/csv/md/png over the finished points: the SSD model's best pass@1 per point against the base (and
    against the point's control when it was evaluated); for a grid of control settings alone, the control's."""
    rows = []
    for settings, pcfg in points:
        if control_only:
            ev = _control_point(out, pcfg)
        else:
            ev = read_json(Path(pcfg.output_dir) / "run.json")["evaluation"]
        tuned, base = ev["tuned"], ev["base"]
        s = pcfg.sample
        if control_only:  # the heatmap's rows and columns: the support the control keeps
            from .evaluate import control_config

            c = control_config(pcfg).eval.to_decoding(1.0, s)
            s = type(s)(temperature=c.control_temperature, top_k=c.control_top_k, top_p=c.control_top_p)
        rows.append({
            "point": point_name(settings), **settings, "arm": "control" if control_only else "SSD",
            "T_train": s.temperature, "truncation": _truncation(s),
            "column": "; ".join([_truncation(s), *(f"{k.split('.')[-1]}={v}" for k, v in settings.items()
                                                   if k not in ("sample.temperature", "sample.top_k", "sample.top_p",
                                                                "sample.min_p"))]),
            "best_T_eval": float(tuned["best_temperature"]), "pass@1": tuned["best_pass@1"]["value"],
            "pass@1_ci95": tuned["best_pass@1"]["ci95"],
            "pass@k": tuned["by_temperature"][tuned["best_temperature"]],
            "base_pass@1": base["best_pass@1"]["value"], "base_best_T_eval": float(base["best_temperature"]),
            "difference": ev["best_vs_best_pass@1"]["difference"], "difference_ci95": ev["best_vs_best_pass@1"]["ci95"],
            **({"vs_control": ev["ssd_vs_control_pass@1"]["difference"],
                "vs_control_ci95": ev["ssd_vs_control_pass@1"]["ci95"]} if ev.get("ssd_vs_control_pass@1") else {}),
        })
    best = max(rows, key=lambda r: r["pass@1"])
    result = {"points": rows, "best": best["point"], "base_pass@1": rows[0]["base_pass@1"],
              "base_best_T_eval": rows[0]["base_best_T_eval"], "arm": "control" if control_only else "SSD"}
    write_json(out / "sweep.json", result)
    keys = list(points[0][0])
    versus = any("vs_control" in r for r in rows)
    header = ["point", *keys, "best T_eval", "pass@1", "95% CI", "vs base", "95% CI of difference",
              *(["vs control", "95% CI of difference to control"] if versus else [])]
    lines = [",".join(header)]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["point"], *(str(r[k]) for k in keys), f"{r['best_T_eval']:g}", f"{r['pass@1']:.4f}",
                 f"{r['pass@1_ci95'][0]:.4f}..{r['pass@1_ci95'][1]:.4f}", f"{r['difference']:+.4f}",
                 f"{r['difference_ci95'][0]:+.4f}..{r['difference_ci95'][1]:+.4f}"]
        if versus:
            cells += ([f"{r['vs_control']:+.4f}", f"{r['vs_control_ci95'][0]:+.4f}..{r['vs_control_ci95'][1]:+.4f}"]
                      if "vs_control" in r else ["", ""])
        lines.append(",".join(cells))
        md.append("| " + " | ".join(cells) + " |")
    atomic_write_text(out / "sweep.csv", "\n".join(lines) + "\n")
    what = ("The control (the base under eval.decoding=ssd_equivalent, nothing trained) at each point"
            if control_only else "The SSD model at each point")
    atomic_write_text(out / "sweep.md", f"Base model: best pass@1 {result['base_pass@1']:.4f} at T_eval "
                      f"{result['base_best_T_eval']:g}. {what}. Best point: {best['point']}.\n\n" + "\n".join(md) + "\n")
    from .plots import sweep_heatmap

    sweep_heatmap(rows, result["base_pass@1"], out / "sweep.png", arm=result["arm"])
    return result


def _truncation(s) -> str:
    parts = [f"top-k {s.top_k}" if s.top_k else "", f"top-p {s.top_p:g}" if s.top_p < 1 else "",
             f"min-p {s.min_p:g}" if s.min_p else ""]
    return ", ".join(p for p in parts if p) or "none"
