"""Matplotlib figures for `ssd analyze` and `ssd report` (PNG, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

CLASS_COLORS = {"lock": "#9db4d0", "fork": "#f0a040", "other": "#dddddd"}
MODEL_COLORS = {"base": "#7f7f7f", "tuned": "#1f77b4", "SSD": "#1f77b4", "control": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------------
# Analysis


def entropy_plot(df, summary: dict, path: Path) -> Path:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    classes = [c for c in ("lock", "fork") if summary["by_class"][c]["positions"]]
    for j, m in enumerate(("base", "tuned")):
        vals = [summary["by_class"][c][f"entropy_{m}"] for c in classes]
        a.bar([i + (j - 0.5) * 0.38 for i in range(len(classes))], vals, 0.38, label=m, color=MODEL_COLORS[m])
    a.set_xticks(range(len(classes)), [f"{c}\n({summary['by_class'][c]['share']:.0%} of tokens)" for c in classes])
    a.set_ylabel("mean entropy at T=1 (nats)")
    a.set_title("entropy before (base) and after (tuned) SSD")
    a.legend()
    sample = df.sample(min(len(df), 5000), random_state=0) if len(df) else df
    for c in classes:
        s = sample[sample["class"] == c]
        b.scatter(s["entropy_base"], s["entropy_tuned"], s=5, alpha=0.5, color=CLASS_COLORS[c], label=c)
    hi = max(float(df["entropy_base"].max()), float(df["entropy_tuned"].max()), 0.1) if len(df) else 1.0
    b.plot([0, hi], [0, hi], color="black", lw=0.8, ls="--")
    b.set_xlabel("base entropy (nats)")
    b.set_ylabel("tuned entropy (nats)")
    b.set_title("per position (below the line: sharper after SSD)")
    b.legend(markerscale=3)
    return _save(fig, path)


def tail_mass_plot(df, summary: dict, path: Path) -> Path:
    import numpy as np

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    floor = 1e-6
    for ax, c in zip(axes, ("lock", "fork")):
        sel = df[df["class"] == c]
        for m in ("base", "tuned"):
            v = np.sort(np.clip(sel[f"tail_mass_{m}"].to_numpy(), floor, 1))
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", color=MODEL_COLORS[m],
                        label=f"{m} (mean {summary['by_class'][c][f'tail_mass_{m}']:.4f})")
        ax.set_xscale("log")
        ax.set_xlim(floor, 1)
        ax.set_xlabel(f"probability outside the sampling support (clipped at {floor:g})")
        ax.set_title(f"{c} positions ({len(sel)})")
        ax.legend(loc="lower right")
    axes[0].set_ylabel("share of positions with tail mass <= x")
    return _save(fig, path)


def token_strips(df, path: Path, examples: int = 3, max_lines: int = 28, max_cols: int = 88) -> Path:
    """Example responses laid out as code: left coloured by class (ground-truth forks boxed), right by the
    change in the actual token's log-probability (tuned - base)."""
    import matplotlib.colors as mcolors
    import numpy as np
    from matplotlib.patches import Rectangle

    plt = _plt()
    cw, lh = 0.075, 0.17  # inches per character cell and per line
    fontsize = cw * 72 / 0.602  # DejaVu Sans Mono advances 0.602 em per character
    texts = sorted(df["text_index"].unique())[:examples]
    layouts = []
    for t in texts:
        rows = df[df["text_index"] == t]
        cells, line, col = [], 0, 0
        delta = (rows["logprob_tuned"] - rows["logprob_base"]).to_numpy()
        for r in zip(rows["token"], rows["class"], rows["gt_class"], delta):
            for ch in r[0]:
                if line >= max_lines:
                    break
                if ch == "\n":
                    line, col = line + 1, 0
                    continue
                if col < max_cols:
                    cells.append((line, col, ch, r))
                col += 1
        layouts.append((t, rows, cells, min(line + 1, max_lines)))
    total_lines = sum(n + 2 for *_, n in layouts) or 1
    width = 2 * max_cols * cw + 0.6
    fig = plt.figure(figsize=(width, total_lines * lh + 0.6))
    norm = mcolors.TwoSlopeNorm(vmin=-2.0, vcenter=0.0, vmax=2.0)
    cmap = plt.get_cmap("RdBu")
    top = 0.0
    H = total_lines * lh + 0.6
    for _, _rows, cells, n in layouts:
        for k, mode in enumerate(("class", "change")):
            ax = fig.add_axes([(0.2 + k * (max_cols * cw + 0.2)) / width, 1 - (top + (n + 1.5) * lh + 0.3) / H,
                               max_cols * cw / width, n * lh / H])
            ax.set_xlim(0, max_cols)
            ax.set_ylim(n, 0)
            ax.axis("off")
            for line, col, _ch, r in cells:
                _, cls, gt, change = r
                color = CLASS_COLORS[cls] if mode == "class" else cmap(norm(np.clip(change, -2, 2)))
                ax.add_patch(Rectangle((col, line), 1, 1, color=color, lw=0))
                if mode == "class" and gt == "fork":
                    ax.add_patch(Rectangle((col, line), 1, 1, fill=False, lw=0.8, ec="black"))
            lines: dict[int, list] = {}
            for line, col, ch, _ in cells:
                lines.setdefault(line, []).append((col, ch))
            for line, chars in lines.items():
                s = [" "] * (max(c for c, _ in chars) + 1)
                for c, ch in chars:
                    s[c] = ch
                ax.text(0, line + 0.78, "".join(s), family="DejaVu Sans Mono", fontsize=fontsize, va="baseline")
            title = (f"{rows['text_id'].iloc[0]}: lock (blue) / fork (orange) by the rule; boxed = ground-truth fork"
                     if mode == "class" else "change in log p(actual token), tuned - base: blue up, red down (+-2)")
            ax.set_title(title, fontsize=8, loc="left")
        top += (n + 2) * lh
    return _save(fig, path)


def analysis_plots(df, summary: dict, out_dir: Path, examples: int = 3) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [entropy_plot(df, summary, out_dir / "entropy.png"), tail_mass_plot(df, summary, out_dir / "tail_mass.png")]
    if examples > 0 and len(df):
        paths.append(token_strips(df, out_dir / "tokens.png", examples))
    return paths


# ---------------------------------------------------------------------------------------------------------
# Run report


def length_plot(stats: dict, path: Path) -> Path:
    """Left: lengths kept and dropped (stacked). Right: lengths of the samples with each flag, on the same bins."""
    plt = _plt()
    h = stats["length_tokens"]
    edges = h["all"]["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1
    flags = [f for f in ("truncated", "looping", "has_code", "has_think") if f in h]
    fig, axes = plt.subplots(1, 2 if flags else 1, figsize=(12 if flags else 7, 3.2), squeeze=False)
    ax = axes[0][0]
    ax.bar(centers, h["kept"]["counts"], width, color=MODEL_COLORS["tuned"], label="kept")
    ax.bar(centers, h["dropped"]["counts"], width, bottom=h["kept"]["counts"], color="#d62728", label="dropped")
    ax.set_xlabel("sample length (output tokens)")
    ax.set_ylabel("samples")
    ax.set_title("sample lengths, kept and dropped by the filter")
    ax.legend()
    if flags:
        ax = axes[0][1]
        for f, color in zip(flags, ("#d62728", "#9467bd", "#2ca02c", "#ff7f0e")):
            ax.step(edges, [0] + h[f]["counts"], where="pre", color=color, label=f"{f} ({sum(h[f]['counts'])})")
        ax.set_xlabel("sample length (output tokens)")
        ax.set_ylabel("samples")
        ax.set_title("samples with each flag")
        ax.legend()
    return _save(fig, path)


def training_plot(history: list[dict], path: Path) -> Path:
    plt = _plt()
    rows = [r for r in history if "loss" in r and "step" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    a.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker=".", color=MODEL_COLORS["tuned"])
    a.set_xlabel("optimizer step")
    a.set_ylabel("training loss (assistant tokens)")
    a.set_title("loss")
    lr = [r for r in rows if "learning_rate" in r]
    b.plot([r["step"] for r in lr], [r["learning_rate"] for r in lr], color="black", label="learning rate")
    b.set_xlabel("optimizer step")
    b.set_ylabel("learning rate")
    gn = [r for r in rows if "grad_norm" in r]
    if gn:
        b2 = b.twinx()
        b2.plot([r["step"] for r in gn], [r["grad_norm"] for r in gn], color="#d62728", marker=".", label="grad norm")
        b2.set_ylabel("gradient norm", color="#d62728")
    b.set_title("schedule and gradient norm")
    return _save(fig, path)


def pass_at_k_plot(tables: dict[str, dict], ks: list[str], path: Path) -> Path:
    """tables: {model: {T: {"pass@k": {"value", "ci95"}}}} -> pass@k per T_eval with 95 % CIs."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.4), squeeze=False)
    for ax, k in zip(axes[0], ks):
        for j, (name, table) in enumerate(tables.items()):
            ts = [t for t in table if k in table[t]]
            xs = [float(t) + (j - (len(tables) - 1) / 2) * 0.02 for t in ts]
            v = [table[t][k]["value"] for t in ts]
            err = [[table[t][k]["value"] - table[t][k]["ci95"][0] for t in ts],
                   [table[t][k]["ci95"][1] - table[t][k]["value"] for t in ts]]
            ax.errorbar(xs, v, yerr=err, marker="o", capsize=3, label=name,
                        color=MODEL_COLORS.get(name, None))
        ax.set_xlabel("T_eval (0 = greedy)")
        ax.set_ylabel(k)
        ax.set_title(f"{k} per evaluation temperature (95% CI)")
        ax.legend()
    return _save(fig, path)


def difficulty_plot(rows: dict[str, dict], path: Path) -> Path:
    """rows: {model: {difficulty: {"value", "ci95", "problems"}}} at each model's best T_eval."""
    plt = _plt()
    diffs = [d for d in ("easy", "medium", "hard") if any(d in r for r in rows.values())]
    diffs += sorted({d for r in rows.values() for d in r} - set(diffs))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.76 / max(len(rows), 1)
    for j, (name, r) in enumerate(rows.items()):
        xs = [i + (j - (len(rows) - 1) / 2) * width for i, d in enumerate(diffs) if d in r]
        v = [r[d]["value"] for d in diffs if d in r]
        err = [[r[d]["value"] - r[d]["ci95"][0] for d in diffs if d in r],
               [r[d]["ci95"][1] - r[d]["value"] for d in diffs if d in r]]
        ax.bar(xs, v, width, yerr=err, capsize=3, label=name, color=MODEL_COLORS.get(name.split(" ")[0], None))
    ax.set_xticks(range(len(diffs)), [f"{d}\n({next(r[d]['problems'] for r in rows.values() if d in r)} problems)"
                                      for d in diffs])
    ax.set_ylabel("pass@1")
    ax.set_title("pass@1 by difficulty at each model's best T_eval (95% CI)")
    ax.legend()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------------------
# Rounds and sweeps


def rounds_plot(rounds: list[dict], path: Path) -> Path:
    """pass@k at each model's best T_eval: round 0 is the base, round r the model after r rounds (95 % CI)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    models = [rounds[0]["base"]] + [r["tuned"] for r in rounds]
    ks = sorted(models[0]["pass@k"], key=lambda k: int(k.split("@")[1]))
    for k in ks:
        ax.plot(range(len(models)), [m["pass@k"].get(k) for m in models], marker="o", label=k)
    p1 = [m["best_pass@1"] for m in models]
    ax.errorbar(range(len(models)), [v["value"] for v in p1],
                yerr=[[v["value"] - v["ci95"][0] for v in p1], [v["ci95"][1] - v["value"] for v in p1]],
                fmt="none", ecolor="black", capsize=3, lw=0.8)
    ax.set_xticks(range(len(models)), ["base"] + [f"round {r['round']}" for r in rounds])
    ax.set_ylabel("pass@k at the model's best T_eval")
    ax.set_title("iterative SSD: pass@k per round (bars: pass@1 95 % CI)")
    ax.legend()
    return _save(fig, path)


def sweep_heatmap(rows: list[dict], base_pass1: float, path: Path, arm: str = "SSD") -> Path:
    """Best pass@1 of the SSD model (or of the control, `arm`) per (T_train, other settings), each cell with its
    best T_eval."""
    import numpy as np

    plt = _plt()
    temps = sorted({r["T_train"] for r in rows})
    cols = list(dict.fromkeys(r["column"] for r in rows))
    grid = np.full((len(temps), len(cols)), np.nan)
    for r in rows:
        grid[temps.index(r["T_train"]), cols.index(r["column"])] = r["pass@1"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.9 * len(cols), 1.4 + 0.7 * len(temps)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    for r in rows:
        i, j = temps.index(r["T_train"]), cols.index(r["column"])
        ax.text(j, i, f"{r['pass@1']:.3f}\nT_eval {r['best_T_eval']:g}", ha="center", va="center",
                color="white" if r["pass@1"] < np.nanmean(grid) else "black", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=20, ha="right")
    ax.set_yticks(range(len(temps)), [f"T_train {t:g}" for t in temps])
    ax.set_title(f"{arm} best pass@1 (base: {base_pass1:.3f})")
    fig.colorbar(im, ax=ax, label="pass@1")
    return _save(fig, path)


def map_plot(rows: list[dict], path: Path) -> Path:
    """`ssd demo --map`: SSD - base and SSD - control (best-vs-best pass@1 and pass@5, 95 % CIs) per base, bases
    ordered as listed (weakest first), each labelled with its test greedy pass@1."""
    plt = _plt()
    ks = [k for k in ("pass@1", "pass@5") if any(k in r["ssd_minus_base"] for r in rows)]
    fig, axes = plt.subplots(1, len(ks), figsize=(5.5 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        for j, (key, label, color) in enumerate((("ssd_minus_base", "SSD - base", "#1f77b4"),
                                                 ("ssd_minus_control", "SSD - control", "#ff7f0e"))):
            pts = [(i, r[key][k]) for i, r in enumerate(rows) if k in r.get(key, {})]
            if not pts:
                continue
            xs = [i + (j - 0.5) * 0.3 for i, _ in pts]
            v = [d["difference"] for _, d in pts]
            err = [[d["difference"] - d["ci95"][0] for _, d in pts], [d["ci95"][1] - d["difference"] for _, d in pts]]
            ax.errorbar(xs, v, yerr=err, fmt="o", capsize=4, label=label, color=color)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xticks(range(len(rows)), [f"{r['base']}\n(greedy {r['test_greedy_pass@1']:.2f})"
                                         if r["test_greedy_pass@1"] is not None else r["base"] for r in rows])
        ax.set_ylabel(f"best-vs-best {k} difference")
        ax.set_title(f"{k}: SSD against the base and the control (95% CI)")
        ax.legend()
    return _save(fig, path)
