"""`ssd report RUN_DIR`: one self-contained HTML page (images inlined, no network) and a Markdown summary.

Reads what the stages of `ssd run` / `ssd demo` wrote into RUN_DIR (every section is optional, so a run that
stopped after training still gets a report): config and manifests, sample and filter statistics, training
curves, pass@k per T_eval for base vs SSD with CIs and per difficulty, the best-vs-best comparison, the
testbed's diagnostics (demo), and the token analyses (`analysis/`, `analysis-references/`). Plots are written
to RUN_DIR/report_files/ and embedded as base64 in report.html; report.md links them.
"""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path

from .io import InputError, atomic_write_text, read_json

ANALYSES = {"analysis": "held-out samples of this run (neither model trained on them)",
            "analysis-references": "testbed reference solutions with ground-truth lock/fork spans"}
MODEL_NAMES = {"base": "base", "control": "control", "tuned": "SSD"}  # control: the no-training decoding rule


def _read(path: Path):
    return read_json(path, default=None)


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _md_cell(x) -> str:
    return _fmt(x).replace("|", "\\|")  # (a `|` in a Markdown table cell would end the cell)


def _ci(v: dict, digits: int = 3) -> str:
    return f"{v['value']:.{digits}f} [{v['ci95'][0]:.{digits}f}, {v['ci95'][1]:.{digits}f}]"


class _Doc:
    """Collects the page as (HTML, Markdown) in parallel, so both say the same thing."""

    def __init__(self, files: Path):
        self.html: list[str] = []
        self.md: list[str] = []
        self.files = files

    def h(self, level: int, text: str) -> None:
        self.html.append(f"<h{level} id='{html.escape(text.lower().replace(' ', '-'))}'>{html.escape(text)}</h{level}>")
        self.md += ["", "#" * level + " " + text, ""]

    def p(self, text: str, md: bool = True) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        if md:
            self.md += [text, ""]

    def table(self, header: list[str], rows: list[list], md: bool = True) -> None:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if md:
            self.md += ["| " + " | ".join(_md_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
            self.md += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            self.md.append("")

    def image(self, path: Path, alt: str) -> None:
        if not path.resolve().is_relative_to(self.files.parent.resolve()):  # (a model card: its folder holds its images)
            self.files.mkdir(parents=True, exist_ok=True)
            path = Path(shutil.copy2(path, self.files / f"{path.parent.parent.name}-{path.name}"))
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>"
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")
        self.md += [f"![{alt}]({path.relative_to(self.files.parent).as_posix()})", ""]

    def pre(self, title: str, text: str) -> None:
        self.html.append(f"<details><summary>{html.escape(title)}</summary><pre>{html.escape(text)}</pre></details>")


# ---------------------------------------------------------------------------------------------------------
# Sections


def _overview(doc: _Doc, run: Path) -> None:
    info = _read(run / "run.json") or {}
    cfg = info.get("config") or {}
    model = (cfg.get("model") or {}).get("name_or_path") or "?"
    doc.p(f"Run directory: {run}. Base model: {model}. Tuned model: {info.get('tuned_model', run / 'train' / 'model')}.")
    rows = []
    for stage in ("sample", "filter", "train"):
        m = _read(run / stage / "manifest.json")
        if m:
            counts = ", ".join(f"{k} {v}" for k, v in m["counts"].items() if not isinstance(v, (dict, list)))
            rows.append([stage, m.get("finished_at"), f"{m['timings_s'].get('total', 0):.1f}", counts])
    from .evaluate import eval_seconds

    for name in MODEL_NAMES:
        if (run / "eval" / name).is_dir():
            seconds = eval_seconds(run / "eval" / name, run / "eval" / "base" if name == "control" else None)
            rows.append([f"evaluate {MODEL_NAMES[name]}", None, f"{seconds:.1f}",
                         "greedy point reused from the base" if name == "control" and (run / "eval" / "control" / "T0").is_dir() else ""])
    for name in ANALYSES:
        m = _read(run / name / "manifest.json")
        if m:
            rows.append([name, m.get("finished_at"), f"{m['timings_s']['total']:.1f}",
                         ", ".join(f"{k} {v}" for k, v in m["counts"].items())])
    if rows:
        doc.table(["stage", "finished", "seconds", "counts"], rows)
    env = next((m["environment"] for s in ("train", "sample") if (m := _read(run / s / "manifest.json"))), None)
    if env:
        pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
        doc.p(f"Environment: Python {env['python']}, {env['platform']}; {pk}; simplesd commit {env.get('git_commit')}.")
    if (run / "config.yaml").is_file():
        doc.pre("config.yaml (the resolved config of this run)", (run / "config.yaml").read_text(encoding="utf-8"))
    for stage in ("sample", "filter", "train"):
        if (run / stage / "manifest.json").is_file():
            doc.pre(f"{stage}/manifest.json", (run / stage / "manifest.json").read_text(encoding="utf-8"))


def _rounds(doc: _Doc, run: Path) -> None:
    """Iterative SSD (`ssd run --rounds N`): pass@k per round; each round has its own full report."""
    info = _read(run / "rounds.json")
    if not info:
        return
    rounds = info["rounds"]
    doc.h(2, "Rounds")
    doc.p(f"Iterative SSD from {info['base']}: {info['rounds_run']} of {info['rounds_planned']} rounds run "
          f"(prompts: {info['settings']['round_prompts']}, each round fine-tunes "
          f"{'the base' if info['settings']['round_init'] == 'base' else 'the previous round model'}). "
          + (info["stopped_early"] or "No early stop.") + f" Final model: {info['final_model']}.")
    if rounds and "tuned" in rounds[0]:
        ks = sorted(rounds[0]["tuned"]["pass@k"], key=lambda k: int(k.split("@")[1]))
        rows = [["0 (base)", "–", "–", "–", rounds[0]["base"]["best_temperature"],
                 _ci(rounds[0]["base"]["best_pass@1"]), *[rounds[0]["base"]["pass@k"].get(k) for k in ks], "–"]]
        for r in rounds:
            g = r["gain"]
            rows.append([r["round"], r["samples"], r["kept"], r["prompts_offset"], r["tuned"]["best_temperature"],
                         _ci(r["tuned"]["best_pass@1"]), *[r["tuned"]["pass@k"].get(k) for k in ks],
                         f"{g['difference']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"])
        doc.table(["round", "samples", "kept", "prompt offset", "best T_eval", "pass@1 [95% CI]", *ks,
                   "gain over the model sampled from"], rows)
        from .plots import rounds_plot

        doc.image(rounds_plot(rounds, doc.files / "rounds.png"), "pass@k per round at each model's best T_eval")
    else:
        doc.p("No evaluation configured (eval.benchmark): the rounds ran without scores or early stopping.")
    doc.p("Each round is a full run with its own report: "
          + ", ".join(f"round-{r['round']}/report.html" for r in rounds) + ".")


def _headline(doc: _Doc, run: Path) -> None:
    """The lines people paste: the best-vs-best result and what the analysis found."""
    comp = _read(run / "eval" / "comparison.json")
    if comp:
        for name in MODEL_NAMES:
            if name in comp:
                r = comp[name]
                doc.p(f"{MODEL_NAMES[name]}: best pass@1 {_ci(r['best_pass@1'])} at T_eval {r['best_temperature']}.")
        for key, what in (("best_vs_best_pass@1", "SSD - base"), ("ssd_vs_control_pass@1", "SSD - control")):
            d = comp.get(key)
            if d:
                doc.p(f"{what}, each at its best T_eval: {d['difference']:+.3f} pass@1 (95% CI {d['ci95'][0]:+.3f} to "
                      f"{d['ci95'][1]:+.3f}, paired bootstrap over {d['problems']} problems).")
        if comp.get("ssd_vs_control_pass@1"):
            doc.p(control_verdict(comp["best_vs_best_pass@1"], comp["ssd_vs_control_pass@1"]))
    else:
        doc.p("Not evaluated (no eval.benchmark set for this run).")
    for name in ANALYSES:
        s = _read(run / name / "summary.json")
        if s:
            doc.p(f"{name}: {s['findings']['statement']}.")


def _prompts(doc: _Doc, run: Path) -> None:
    """What the sample stage did to the prompt set: duplicates, decontamination, the cap."""
    rep = _read(run / "sample" / "prompts.json")
    if not rep:
        return
    doc.h(2, "Prompts")
    c = rep["counts"]
    d = rep.get("decontamination", {})
    doc.table(["read", "exact duplicates", "normalised duplicates", "contaminated", "clean", "skipped (offset)", "sampled on"],
              [[c["read"], c.get("exact_duplicates", "-"), c.get("normalised_duplicates", "-"),
                c.get("contaminated", "not checked"), c["clean"], c.get("offset", 0), c["selected"]]])
    if d.get("checked") is False:
        doc.p(f"Decontamination: not checked ({d['why']}).")
        return
    st = d["settings"]
    against = "; ".join(f"{b['benchmark']} ({b['problems']} problems"
                        + (f", {b['selection']['start_month']}..{b['selection']['end_month']}" if b.get("selection") else "")
                        + ")" for b in st["benchmarks"])
    doc.p(f"Decontamination against {against}: a prompt is flagged when it shares a run of {st['ngram']} words "
          f"(lower-cased, punctuation and whitespace collapsed, mostly its own words) with a benchmark problem, or "
          f"equals one; n-grams in {st['ngram_common']}+ problems are boilerplate ({st['ignored_common_ngrams']} in the "
          f"benchmark, {st.get('ignored_common_in_prompts', 0)} in the prompts). {d['counts']['flagged']} flagged, "
          f"{d['action']}.")
    if c.get("contaminated_kept"):
        doc.p(f"WARNING: {c['contaminated_kept']} contaminated prompts were KEPT (prompts.keep_contaminated): the "
              "evaluation on the problems they match is not clean.")
    if d["flagged"]:
        rows = [[f["prompt_id"], f["benchmark"], f["task_id"], f["matched_ngrams"], "yes" if f["exact"] else "",
                 f["example"][:90]] for f in d["flagged"][:20]]
        doc.table(["prompt", "benchmark", "problem", "shared n-grams", "exact", "first shared run"], rows)
        if len(d["flagged"]) > 20:
            doc.p(f"... {len(d['flagged']) - 20} more in sample/prompts.json.")


def _samples(doc: _Doc, run: Path) -> None:
    stats = _read(run / "filter" / "stats.json")
    if not stats:
        return
    doc.h(2, "Samples and filter")
    d = stats["dropped"]
    doc.table(["samples", "kept", "held out (analysis)", "trained on", "finish stop", "finish length (hit the cap)"],
              [[stats["total"], stats["kept"], stats.get("held_out", 0), stats["kept"] - stats.get("held_out", 0),
                stats["finish_reason"]["stop"], stats["finish_reason"]["length"]]])
    doc.table(["dropped: " + k.replace("_", " ") for k in d], [list(d.values())])
    flags = stats.get("flags")
    if flags:
        doc.table(["flag", "samples", "kept"], [[f, v["all"], v["kept"]] for f, v in flags.items()])
    from .plots import length_plot

    doc.image(length_plot(stats, doc.files / "lengths.png"),
              "Sample lengths (output tokens), kept vs dropped, and the samples with each flag")


def _training(doc: _Doc, run: Path) -> None:
    hist = _read(run / "train" / "log_history.json")
    if not hist:
        return
    doc.h(2, "Training")
    m = _read(run / "train" / "manifest.json") or {}
    c = m.get("counts", {})
    doc.p(f"{c.get('examples', '?')} examples, {c.get('optimizer_steps', '?')} optimizer steps, final loss "
          f"{_fmt(c.get('final_loss'), 4)}, {round(m.get('timings_s', {}).get('total', 0), 1)} s.")
    ex = m.get("examples") or {}
    if ex.get("mode") == "token_exact":
        would = ex.get("template_would_render_differently")
        doc.p(f"Token-exact: {c.get('token_exact_rows', '?')} of {c.get('examples', '?')} rows trained on exactly the "
              f"token ids the sampler fed and drew ({ex.get('rows_ending_in_stop_token', '?')} end with the stop token "
              "the model drew; the others hit max_new_tokens and get none)"
              + (f"; rendering their text again with the chat template would have changed {would} of them." if would else "."))
    elif ex.get("mode") == "chat_template":
        doc.p(f"Trained from text through the chat template (no token ids in the training file): "
              f"{c.get('rows_rendered_differently', '?')} of {c.get('examples', '?')} rows are rendered differently "
              "from what was sampled, so the model trains on tokens it did not generate there.")
    from .plots import training_plot

    doc.image(training_plot(hist, doc.files / "training.png"), "Training loss, learning rate and gradient norm")


def eval_tables(eval_dir: Path) -> dict:
    """{model: {"by_temperature": {T: {pass@k: {value, ci95}}}, "best_temperature", "by_difficulty_at_best"}}"""
    out = {}
    for name in MODEL_NAMES:
        res = _read(eval_dir / name / "results.json")
        if not res:
            continue
        table, diff, base = {}, {}, {}
        for t in res["by_temperature"]:
            s = _read(eval_dir / name / f"T{t}" / "summary.json")
            if s:
                table[t] = s["overall"]
                diff[t] = {d: v["pass@1"] for d, v in s["by_difficulty"].items()}
                if s.get("base"):  # EvalPlus: `overall` is base + plus; `base` the base inputs alone
                    base[t] = s["base"]
        out[name] = {"by_temperature": table, "best_temperature": res["best_temperature"],
                     "by_difficulty_at_best": diff.get(res["best_temperature"], {}), "base_by_temperature": base}
    return out


def _evaluation(doc: _Doc, run: Path) -> None:
    tables = eval_tables(run / "eval")
    if not tables:
        return
    from .plots import difficulty_plot, pass_at_k_plot

    doc.h(2, "Evaluation")
    first = next(iter(tables.values()))
    hottest = max(first["by_temperature"], key=float)  # greedy draws one sample; the sweep's n shows at T > 0
    s = _read(run / "eval" / next(iter(tables)) / f"T{hottest}" / "summary.json") or {}
    if s:
        dec = s.get("decoding", {})
        doc.p(f"Benchmark {s.get('benchmark')}, {s.get('problems_graded')} problems, {s.get('samples_per_problem')} "
              f"samples per problem and T_eval (greedy: 1); top-k {dec.get('top_k')}, top-p {dec.get('top_p')}, min-p "
              f"{dec.get('min_p')}, max {dec.get('max_new_tokens')} new tokens, seed {dec.get('seed')}. pass@k is "
              "unbiased (Chen et al.); brackets are bootstrap 95 % CIs over problems.")
        sel = s.get("selection", {})
        if sel.get("max_problems") or sel.get("task_ids"):
            doc.p(f"WARNING: only {s.get('problems_graded')} problems were graded (eval.max_problems / eval.task_ids): "
                  "a quick look, not the benchmark's score.")
        if sel.get("by_month"):
            doc.p("Problems by contest month: " + ", ".join(f"{m} {n}" for m, n in sel["by_month"].items())
                  + "; by difficulty: " + ", ".join(f"{k} {n}" for k, n in sel["by_difficulty"].items())
                  + (f". WARNING: {sel['warning']}." if sel.get("warning") else "."))
    ks = sorted({k for t in tables.values() for row in t["by_temperature"].values() for k in row},
                key=lambda k: int(k.split("@")[1]))
    temps = sorted({t for v in tables.values() for t in v["by_temperature"]}, key=float)
    header = ["T_eval"] + [f"{MODEL_NAMES[n]} {k}" for n in tables for k in ks]
    rows = []
    for t in temps:
        row = ["greedy" if float(t) == 0 else t]
        for n in tables:
            for k in ks:
                v = tables[n]["by_temperature"].get(t, {}).get(k)
                row.append(_ci(v) if v else None)
        rows.append(row)
    doc.table(header, rows)
    if any(v["base_by_temperature"] for v in tables.values()):
        doc.p("EvalPlus: the pass@k above is on base + plus inputs (EvalPlus's headline); on the base inputs alone:")
        doc.table(header, [[r[0]] + [_ci(tables[n]["base_by_temperature"].get(t, {}).get(k))
                                     if tables[n]["base_by_temperature"].get(t, {}).get(k) else None
                                     for n in tables for k in ks] for r, t in zip(rows, temps)])
    plot_ks = [k for k in ("pass@1", "pass@5") if k in ks] or ks[:1]
    doc.image(pass_at_k_plot({MODEL_NAMES[n]: v["by_temperature"] for n, v in tables.items()}, plot_ks,
                             doc.files / "pass_at_k.png"),
              f"pass@k per T_eval, {', '.join(MODEL_NAMES[n] for n in tables)}, with 95% CIs")
    if "control" in tables:
        doc.p("control = the base decoded with the no-training rule (eval.decoding=ssd_equivalent): what a model that "
              "learned SSD's training distribution exactly would sample (README, Evaluation).")
    diff = {f"{MODEL_NAMES[n]} (T {v['best_temperature']})": v["by_difficulty_at_best"] for n, v in tables.items()
            if v["by_difficulty_at_best"]}
    if diff:
        doc.table(["difficulty"] + list(diff), [[d] + [_ci(r[d]) if d in r else None for r in diff.values()]
                                                for d in sorted({d for r in diff.values() for d in r})])
        doc.image(difficulty_plot(diff, doc.files / "difficulty.png"), "pass@1 by difficulty at each model's best T_eval")
    comp = _read(run / "eval" / "comparison.json")
    results = _read(run / "results.json") or {}
    best = results.get("best_vs_best") or ({"pass@1": comp["best_vs_best_pass@1"]} if comp else {})
    if best:
        doc.table(["best vs best", "base T", "SSD T", "difference (SSD - base)", "95% CI", "problems"],
                  [[k, d["base_T"], d["tuned_T"], f"{d['difference']:+.3f}",
                    f"{d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}", d["problems"]] for k, d in best.items()])
    versus = results.get("ssd_vs_control") or ({"pass@1": comp["ssd_vs_control_pass@1"]}
                                               if comp and comp.get("ssd_vs_control_pass@1") else {})
    if versus:
        doc.table(["best vs best", "control T", "SSD T", "difference (SSD - control)", "95% CI", "problems"],
                  [[k, d["control_T"], d["tuned_T"], f"{d['difference']:+.3f}",
                    f"{d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}", d["problems"]] for k, d in versus.items()])


def control_verdict(vs_base: dict, vs_control: dict) -> str:
    """What the three arms mean for a user, from the two paired CIs (SSD - base, SSD - control)."""
    def sign(d):
        lo, hi = d["ci95"]
        return 1 if lo > 0 else -1 if hi < 0 else 0

    b, c = sign(vs_base), sign(vs_control)
    if c > 0:
        return ("SSD beat the no-training control: it learned something a decoding rule on the base does not give "
                "(the paper's context-dependent reshaping)" + ("." if b > 0 else ", though not the best-tuned base."))
    if c == 0 and b > 0:
        return ("SSD beat the base but not the control (the difference to the control's CI includes 0): on this "
                "benchmark the decoding rule alone may give the gain; try eval.decoding=ssd_equivalent on the base "
                "before paying for training.")
    if c < 0:
        return "SSD did worse than the no-training control: the decoding rule on the base is the better choice here."
    return ("Neither difference is distinguishable from 0 at 95 %: SSD did not measurably beat the base or the "
            "decoding rule on these problems.")


def _testbed(doc: _Doc, run: Path) -> None:
    r = _read(run / "results.json")
    if not r or "self_samples" not in r:
        return
    doc.h(2, "Testbed diagnostics")
    ss = r["self_samples"]
    doc.p(f"Self-samples (the SSD training data) that pass the tests: {ss['correct']}/{ss['samples']} "
          f"({ss['share_correct']:.1%}); among those kept for training {ss['share_kept_correct']:.1%}. SSD never "
          "grades its samples; the testbed does so only to show what the model was trained on.")
    if "greedy_failure_kinds" in r:
        kinds = sorted({k for v in r["greedy_failure_kinds"].values() for k in v})
        doc.table(["greedy outcome"] + [MODEL_NAMES.get(n, n) if n != "ssd" else "SSD" for n in r["greedy_failure_kinds"]],
                  [[k] + [v.get(k, 0) for v in r["greedy_failure_kinds"].values()] for k in kinds])
    doc.p("A prior alone (programs that know the family, not the problem): " + ", ".join(
        f"{k} pass@1 {v:.3f}" for k, v in r["prior_only_pass@1"].items()) + ".")
    u = r["unseen_pairs_at_best_T"]
    doc.table(["rule pairs", "base pass@1", "SSD pass@1"],
              [[g, u["base"][g]["pass@1"], u["ssd"][g]["pass@1"]] for g in ("seen", "unseen")])
    if "ablation" in r:
        a = r["ablation"]["best_vs_best"]["pass@1"]
        doc.p(f"Ablation (T_train 2.0, no truncation): best-vs-best pass@1 {a['difference']:+.3f} "
              f"(95% CI {a['ci95'][0]:+.3f} to {a['ci95'][1]:+.3f}); its own report: ablation/report.html.")


def _analysis(doc: _Doc, run: Path) -> None:
    present = [(name, what) for name, what in ANALYSES.items() if (run / name / "summary.json").is_file()]
    if not present:
        return
    doc.h(2, "Lock and fork positions")
    doc.p("Both models teacher-forced on the same texts. Lock: the base's top-1 probability at T=1 is at least the "
          "rule's threshold (one token in its nucleus); fork: otherwise. Tail mass: T=1 probability outside the "
          "sampling support (T_train, top-k, top-p). Changes carry bootstrap 95 % CIs over texts.")
    for name, what in present:
        s = _read(run / name / "summary.json")
        doc.h(3, f"{name}: {what}")
        doc.p(f"{s['texts']} texts, {s['tokens']} response tokens; rule: {s['rule']['definition']}; sampling support: "
              f"T {s['support']['temperature']}, top-k {s['support']['top_k']}, top-p {s['support']['top_p']}.")
        doc.p("Finding (rule classes): " + s["findings"]["statement"] + ".")
        if "findings_ground_truth" in s:
            doc.p("Finding (ground-truth classes): " + s["findings_ground_truth"]["statement"] + ".")
        groups = [("rule", s["by_class"])] + ([("ground truth", s["by_ground_truth"])] if "by_ground_truth" in s else [])
        rows = []
        for label, by in groups:
            for c, v in by.items():
                if not v["positions"]:
                    continue
                rows.append([f"{c} ({label})", v["positions"], f"{v['share']:.1%}", v["entropy_base"], v["entropy_tuned"],
                             _fmt(v["tail_mass_base"], 4), _fmt(v["tail_mass_tuned"], 4), v["support_base"],
                             v["support_tuned"], v["top1_base"], v["top1_tuned"], _fmt(v["kl"], 4),
                             _fmt(v["kl_tail_mass"], 4), _fmt(v["kl_within_support"], 4), _fmt(v["kl_within_tail"], 4)])
        doc.table(["class", "positions", "share", "entropy base", "entropy SSD", "tail mass base", "tail mass SSD",
                   "support base", "support SSD", "top-1 base", "top-1 SSD", "KL(SSD||base)", "KL: tail mass",
                   "KL: within support", "KL: within tail"], rows)
        if s.get("agreement"):
            a = s["agreement"]
            doc.p(f"Rule vs ground truth on {a['positions']} labelled positions ({a['ground_truth_forks']} forks, "
                  f"{a['ground_truth_locks']} locks); mean base top-1 at ground-truth locks "
                  f"{a['mean_top1_base']['lock']:.3f}, at forks {a['mean_top1_base']['fork']:.3f}.")
            doc.table(["rule (predicts fork when)", "fork recall", "lock recall", "fork precision", "balanced accuracy",
                       "Cohen's kappa"], [[r["rule"], r["fork_recall"], r["lock_recall"], r["fork_precision"],
                                            r["balanced_accuracy"], r["cohen_kappa"]] for r in a["by_rule"]])
        for png, alt in (("entropy.png", "Entropy before vs after, by class"),
                         ("tail_mass.png", "Tail mass outside the sampling support, by class"),
                         ("tokens.png", "Example responses coloured by class and by change")):
            if (run / name / "plots" / png).is_file():
                doc.image(run / name / "plots" / png, f"{name}: {alt}")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
figure{margin:1em 0}figcaption{font-size:12px;color:#555}pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
details{margin:.4em 0}"""


def card_sections(run_dir: str | Path, files: Path, rounds_dir: str | Path | None = None) -> str:
    """The report's results, in Markdown, for a model card (`share.model_card`): the rounds (of `rounds_dir`), the
    headline, evaluation, testbed diagnostics, analysis, prompts, samples and training of the run in `run_dir`,
    with their plots in `files` (linked relative to its parent, the model folder); not the overview's stage table,
    environment, config and manifests (the card states those its own way)."""
    run = Path(run_dir)
    doc = _Doc(files)
    if rounds_dir is not None:
        _rounds(doc, Path(rounds_dir))
    doc.h(2, "Results")
    for section in (_headline, _evaluation, _testbed, _analysis, _prompts, _samples, _training):
        section(doc, run)
    return "\n".join(doc.md).strip()


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """RUN_DIR/report.html and RUN_DIR/report.md (plots in RUN_DIR/report_files/)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run}: run directory not found")
    if not any((run / p).exists() for p in ("run.json", "rounds.json", "filter/stats.json", "eval", "analysis")):
        raise InputError(f"{run}: not a run directory (no run.json, filter/, eval/ or analysis/ from `ssd run`)")
    doc = _Doc(run / "report_files")
    doc.h(1, f"SSD run report: {run.name}")
    _rounds(doc, run)
    _headline(doc, run)
    _overview(doc, run)
    _evaluation(doc, run)
    _testbed(doc, run)
    _analysis(doc, run)
    _prompts(doc, run)
    _samples(doc, run)
    _training(doc, run)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>SSD run report: "
            f"{html.escape(run.name)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(doc.html)
            + "\n</body></html>\n")
    atomic_write_text(run / "report.html", page)
    atomic_write_text(run / "report.md", "\n".join(doc.md).strip() + "\n")
    return run / "report.html", run / "report.md"
