"""Step 4: evaluate. `check` grades existing generations; `evaluate` generates with the sampling backend at
one or several T_eval and grades them. Every program runs in the sandboxed grader pool (simplesd.execute).

Outputs of `check` (and of each temperature of `evaluate`): `verdicts.jsonl` (one line per solution, in input
order: task_id, index, verdict, tests_passed, tests_total, seconds), `summary.json` (pass@k for every k the
samples allow, overall and by difficulty, with bootstrap 95 % CIs over problems; verdict counts; the grader's
settings) and `manifest.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from .config import EvalConfig, SSDConfig, identity, reads, to_dict
from .io import InputError, atomic_write_jsonl, fingerprint_path, output_dir, read_json, read_jsonl, require_field, write_json
from .manifest import versions
from .metrics import paired_difference, summarize
from .records import Verdict
from .stage import Stage

log = logging.getLogger(__name__)


def read_solutions(path: str | Path, known: set[str]) -> list[tuple[str, str]]:
    out = []
    for lineno, rec in read_jsonl(path):
        tid = require_field(path, lineno, rec, "task_id")
        # EvalPlus's samples may carry the whole program as `solution` instead
        completion = require_field(path, lineno, rec, "completion" if "completion" in rec or "solution" not in rec else "solution")
        if tid not in known:
            raise InputError(f"{path}:{lineno}: field 'task_id': unknown task '{tid}' (not in the problem file)")
        out.append((tid, completion))
    if not out:
        raise InputError(f"{path}: no solutions")
    return out


def grade(problems: list, solutions: list[tuple[str, str]], ecfg: EvalConfig, progress: bool = True):
    """Verdicts (input order) for (task_id, completion) pairs, and the sandbox's description."""
    from .execute.benchmarks import BENCHMARKS, attach_expected, base_verdict, default_timeout, make_job, tests_total
    from .execute.pool import GraderPool, Limits
    from .progress import bar as progress_bar

    by_id = {p.task_id: p for p in problems}
    bench = problems[0].benchmark
    timeout = ecfg.timeout or default_timeout(bench)
    expected = attach_expected(problems, ecfg.workers, ecfg.memory_mb, progress)  # EvalPlus: the canonical outputs
    rows, jobs, slots = [], [], []
    seen: Counter = Counter()
    for tid, completion in solutions:
        prob = by_id[tid]
        row = Verdict(tid, seen[tid], tests_total=tests_total(prob))
        seen[tid] += 1
        job = make_job(prob, completion, timeout, ecfg.early_exit, ecfg.extraction)
        if job is not None:
            jobs.append(job)
            slots.append(len(rows))
        rows.append(row)
    info = {}
    if jobs:
        with GraderPool(workers=ecfg.workers, limits=Limits(memory_mb=ecfg.memory_mb)) as pool, \
                progress_bar(len(jobs), "grade", "program", progress) as bar:
            info = pool.sandbox_info
            for slot, res in zip(slots, pool.grade(jobs, progress=bar.update)):
                for k in ("verdict", "tests_passed", "tests_total", "seconds"):
                    if k in res:
                        setattr(rows[slot], k, res[k])
                rows[slot].detail = res.get("detail") or None
    for row in rows:  # EvalPlus reports base and base + plus (its jobs stop at the first failure: tests_passed is its index)
        row.base_verdict = base_verdict(by_id[row.task_id], {"verdict": row.verdict, "first_failure": row.tests_passed})
    out = {"timeout_s": timeout, "timeout_applies_to": BENCHMARKS[bench].timeout_applies_to,
           "early_exit": ecfg.early_exit if bench not in ("humaneval+", "mbpp+") else True,
           "extraction": ecfg.extraction, "timeouts_may_differ_by_machine": True, "memory_mb": ecfg.memory_mb,
           "workers": ecfg.workers, "sandbox": info}
    if expected:
        out["evalplus_expected_outputs"] = expected
    return rows, out


def preflight(cfg: SSDConfig, model: str, echo=None) -> None:
    """What would otherwise fail after hours, checked in seconds before any long stage: the model's config and
    tokenizer load, and (when the run evaluates) the grading sandbox starts and passes its self-test. A machine
    that cannot host the sandbox is a SandboxError: one line naming what is missing."""
    import copy

    from transformers import AutoConfig

    from .execute.pool import GraderPool, Limits
    from .models import check_model_files, load_tokenizer

    mcfg = copy.copy(cfg.model)
    mcfg.name_or_path = model
    check_model_files(mcfg)
    load_tokenizer(mcfg)
    try:
        AutoConfig.from_pretrained(model, revision=mcfg.revision, trust_remote_code=mcfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise InputError(f"{model}: cannot load the model's config ({str(e).splitlines()[0]})") from None
    if cfg.eval.benchmark:
        with GraderPool(workers=1, limits=Limits(memory_mb=cfg.eval.memory_mb)) as pool:
            cg = pool.sandbox_info["cgroups"]
        if echo:
            limits = (f"cgroup {cg['version']} limits per program" if cg["version"] else
                      f"no cgroups ({cg['why_not']}): memory, CPU and task limits are per process")
            echo(f"        grader: sandbox self-test passed; {limits}")


def correct_by_problem(rows: list[Verdict]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        out[r.task_id].append(r.passed)
    return dict(out)


def read_verdicts(path: str | Path) -> list[Verdict]:
    return [Verdict.from_json(f"{path}:{lineno}", r) for lineno, r in read_jsonl(path)]


def summary_of(problems: list, rows: list[Verdict]) -> dict:
    """pass@k (for EvalPlus: base + plus, and `base` on the base inputs alone), by difficulty, verdict counts."""
    by_problem = correct_by_problem(rows)
    diff = {p.task_id: p.difficulty for p in problems}
    by_difficulty = defaultdict(dict)
    for tid, v in by_problem.items():
        if diff.get(tid):
            by_difficulty[diff[tid]][tid] = v
    samples = Counter(len(v) for v in by_problem.values())
    return {
        "problems_graded": len(by_problem),
        "samples_per_problem": dict(samples) if len(samples) > 1 else next(iter(samples)),
        "overall": summarize(by_problem),
        "by_difficulty": {d: summarize(v) for d, v in sorted(by_difficulty.items())},
        "verdicts": dict(Counter(r.verdict for r in rows)),
        **({"base": summarize(_base_by_problem(rows))} if any(r.base_verdict for r in rows) else {}),
    }


def _base_by_problem(rows: list[Verdict]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        out[r.task_id].append(r.base_verdict == "passed")
    return dict(out)


# what decides a verdict (eval.workers only spreads the work; the decoding keys only matter to `evaluate`)
GRADING_KEYS = ("benchmark", "timeout", "early_exit", "extraction", "memory_mb")
SELECTION_KEYS = ("start_month", "end_month", "difficulties")
LATER_SELECTION_KEYS = ("mbpp_split", "max_problems", "task_ids")  # in an identity only when set (config.LATER_KEYS)


def _grading(e: EvalConfig) -> dict:
    return {k: getattr(e, k) for k in GRADING_KEYS}


def _later_selection(e: EvalConfig) -> dict:
    return identity({k: getattr(e, k) for k in LATER_SELECTION_KEYS}, "eval")


def select_problems(problems: list, e: EvalConfig, where: str) -> tuple[list, dict]:
    """eval.mbpp_split (MBPP), eval.task_ids, then eval.max_problems: the problems graded, and what was chosen."""
    from .execute.benchmarks import select_mbpp_split

    chosen, note = problems, {}
    if e.benchmark == "mbpp" and e.mbpp_split != "all":
        chosen = select_mbpp_split(chosen, e.mbpp_split)
        note["mbpp_split"] = e.mbpp_split
        if not chosen:
            raise InputError(f"{where}: no MBPP problem of the {e.mbpp_split} split (config key eval.mbpp_split; 'all' keeps every one)")
    if e.task_ids:
        known = {p.task_id for p in chosen}
        unknown = [t for t in e.task_ids if t not in known]
        if unknown:
            raise InputError(f"{where}: config key 'eval.task_ids': {', '.join(unknown[:5])} not among the selected problems")
        wanted = set(e.task_ids)
        chosen = [p for p in chosen if p.task_id in wanted]
        note["task_ids"] = list(e.task_ids)
    if e.max_problems is not None and e.max_problems < len(chosen):
        chosen = chosen[:e.max_problems]
        note["max_problems"] = e.max_problems
        log.warning("evaluate: grading only the first %d problems (eval.max_problems): a quick look, not the "
                    "benchmark's score", e.max_problems)
    return chosen, note


def _need_benchmark(e: EvalConfig) -> None:
    if not e.benchmark:
        raise InputError("config key 'eval.benchmark': set the benchmark (--benchmark; humaneval, mbpp, livecodebench, ...)")
    if not e.problems:
        raise InputError("config key 'eval.problems': set the benchmark's problem file (--problems)")


@reads("eval")
def check(cfg: SSDConfig, solutions_path: str | Path, out_dir: str | Path, *, progress: bool = True,
          overwrite: bool = False) -> dict:
    """Grades existing generations (`ssd check`): cfg.eval.benchmark's problems in cfg.eval.problems against the
    JSONL of task_id + completion at solutions_path. Skipped when out_dir holds the same grading; a directory
    holding another's is refused unless `overwrite`."""
    from .execute.benchmarks import load_benchmark

    ecfg = cfg.eval
    _need_benchmark(ecfg)
    st = Stage("check", out_dir, {**_grading(ecfg), **_later_selection(ecfg)},
               {"problems": fingerprint_path(ecfg.problems), "solutions": fingerprint_path(solutions_path)},
               work=("verdicts.jsonl", "summary.json"), quiet=True)
    if st.finished():
        log.info("check: %s is complete for these solutions and settings; skipping", st.out_dir)
        return read_json(st.out_dir / "summary.json")
    problems = load_benchmark(ecfg.benchmark, ecfg.problems)
    solutions = read_solutions(solutions_path, {p.task_id for p in problems})
    st.claim(overwrite, write=False)  # refused before the grading, written after it (the sandbox may fail)
    graded_ids = {t for t, _ in solutions}
    problems = [p for p in problems if p.task_id in graded_ids]
    if ecfg.task_ids or ecfg.max_problems is not None:  # a quick look at some problems (MBPP's split: as given)
        problems, _ = select_problems(problems, dataclasses.replace(ecfg, mbpp_split="all"), str(ecfg.problems))
        chosen = {p.task_id for p in problems}
        solutions = [(t, c) for t, c in solutions if t in chosen]
    rows, grader = grade(problems, solutions, ecfg, progress)
    st.claim(overwrite)
    st.write_jsonl("verdicts.jsonl", (r.to_json() for r in rows))
    summary = {"benchmark": ecfg.benchmark, "problems_file": str(ecfg.problems), "solutions_file": str(solutions_path),
               **({"selection": _later_selection(ecfg)} if _later_selection(ecfg) else {}),
               **summary_of(problems, rows), "grader": grader, "versions": versions(),
               "seconds": round(time.time() - st.t0, 3)}
    st.write_json("summary.json", summary)
    st.finish({"solutions": len(rows), **summary["verdicts"]})
    return summary


# ---------------------------------------------------------------------------------------------------------
# Generate + grade


def _selected_problems(cfg: SSDConfig):
    """Loads the benchmark, applies the LiveCodeBench window, Returns the problems and the selection's description (settings, problem counts per month and difficulty)."""
    from .execute.benchmarks import load_benchmark, select_window

    e = cfg.eval
    _need_benchmark(e)
    problems = load_benchmark(e.benchmark, e.problems)
    selection = {"problems_in_file": len(problems)}
    if e.benchmark == "livecodebench":
        chosen = select_window(problems, e.start_month, e.end_month, e.difficulties or None)
        what = (f"the window {e.start_month}..{e.end_month}"
                f"{' with difficulty ' + ','.join(e.difficulties) if e.difficulties else ''}")
        if not chosen:
            raise InputError(f"{e.problems}: no problem in {what} (config keys eval.start_month, eval.end_month, "
                             f"eval.difficulties; the file's contest months run {_month_range(problems)})")
        if len(chosen) == len(problems) and (e.start_month or e.end_month or e.difficulties):
            log.warning("evaluate: %s selects all %d problems of %s, the same as no selection: check that the file "
                        "is the release you meant (its contest months run %s)", what, len(problems), e.problems,
                        _month_range(problems))
            selection["warning"] = f"{what} selects every problem in the file"
        selection.update(start_month=e.start_month, end_month=e.end_month, difficulties=e.difficulties)
        problems = chosen
    problems, note = select_problems(problems, e, str(e.problems))
    selection.update(note)
    selection["problems"] = len(problems)
    selection["by_month"] = dict(sorted(Counter((p.contest_date or "")[:7] or "unknown" for p in problems).items()))
    selection["by_difficulty"] = dict(sorted(Counter(p.difficulty or "unknown" for p in problems).items()))
    return problems, selection


def _month_range(problems) -> str:
    months = sorted((p.contest_date or "")[:7] for p in problems if p.contest_date)
    return f"{months[0]}..{months[-1]}" if months else "(no contest dates)"


def _longest_prompt(cfg: SSDConfig) -> int:
    """Tokens of the longest chat-formatted prompt in cfg.prompts (vLLM reserves context for it)."""
    from .chat import encode, render
    from .models import load_tokenizer
    from .prompts import context, load_problems

    tok = load_tokenizer(cfg.model)
    texts = [render(tok, context(p, cfg.prompts.system_prompt)) for p in load_problems(cfg.prompts.path, cfg.prompts.format)]
    return max(len(ids) for ids in encode(tok, texts))


def sampling_config(cfg: SSDConfig, model: str, problems_file: Path, temperature: float) -> SSDConfig:
    """What sampling one T_eval is: `model` on the selected benchmark problems as they are (every problem once: no
    dedup, no shuffle, nothing to decontaminate against; the benchmark's own fields, and prompts.system_prompt as
    in training), drawn with eval's decoding at `temperature`."""
    from .execute.benchmarks import BENCHMARKS

    e = cfg.eval
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, name_or_path=model),
        prompts=dataclasses.replace(cfg.prompts, path=str(problems_file), max_prompts=None, offset=0, subset=None, fields={},
                                    format=BENCHMARKS[e.benchmark].prompt_format,
                                    dedup=False, shuffle=False, decontaminate=False, decontaminate_against=[]),
        sample=dataclasses.replace(cfg.sample, **dataclasses.asdict(e.to_decoding(temperature, cfg.sample))))


def _grade_temperature(cfg: SSDConfig, model: str, problems: list, selection: dict, scfg: SSDConfig, tdir: Path,
                       progress: bool) -> dict:
    """Grades one T_eval's samples into tdir (skipped when tdir holds this grading) and returns its summary."""
    from .chat import answer
    from .sample import iter_samples

    e, d = cfg.eval, scfg.sample.to_decoding()
    st = Stage("grade", tdir, {**_grading(e), **{k: getattr(e, k) for k in SELECTION_KEYS}, **_later_selection(e)},
               {"samples": fingerprint_path(tdir / "samples"), "problems": fingerprint_path(tdir.parent / "problems.jsonl")},
               quiet=True)
    if st.finished():
        return read_json(tdir / "summary.json")
    # a Thinking model's answer is what follows its reasoning (nothing, when the reasoning never closed)
    records = [r for _, r in iter_samples(tdir / "samples")]
    solutions = [(r.prompt_id, answer(r.output, r.thinking)) for r in records]
    rows, grader = grade(problems, solutions, e, progress)
    st.write_jsonl("verdicts.jsonl", (r.to_json() for r in rows))
    summary = {"benchmark": e.benchmark, "problems_file": e.problems, "model": model, "temperature": d.temperature,
               "decoding": {**dataclasses.asdict(d), "per_sample_seeds": "sample_seed(seed, task_id, sample index)",
                            "backend": scfg.sample.backend, "chat_template": cfg.model.chat_template or "the tokenizer's own"},
               "selection": selection, **summary_of(problems, rows), "grader": grader, "versions": versions()}
    if any(r.thinking for r in records):  # graded: the answer after </think>; a reasoning that never closed is no code
        summary["reasoning"] = {"samples": sum(r.thinking for r in records),
                                "unclosed": sum(r.reasoning_unclosed for r in records),
                                "unclosed_truncated": sum(r.reasoning_unclosed and r.truncated for r in records)}
    st.write_json("summary.json", summary)
    st.finish(summary["verdicts"])
    return summary


def evaluate_identity(cfg: SSDConfig, model: str) -> tuple[dict, dict]:
    """(the settings that decide an evaluation directory's results, the inputs' fingerprints). The T_eval list is
    not among them: adding a temperature to the sweep reuses the others."""
    e = cfg.eval
    mcfg = {**to_dict(cfg.model), "name_or_path": model}
    # the arms `ssd run` evaluates (eval.control) are its business; the control's settings count as resolved
    # (null = sample.*'s), and only when this evaluation decodes with it
    ecfg = {k: v for k, v in identity(e, "eval").items()
            if k not in ("temperature", "temperatures", "workers", "control", "control_temperature", "control_top_k",
                         "control_top_p")}
    control = e.to_decoding(None, cfg.sample).control
    if control:
        ecfg["control"] = list(control)
    inputs = {"model": fingerprint_path(model), "problems": fingerprint_path(e.problems)}
    if cfg.model.chat_template:
        inputs["chat_template"] = fingerprint_path(cfg.model.chat_template)
    return {"model": mcfg, "eval": ecfg, "sample.backend": cfg.sample.backend}, inputs


@reads("model", "sample", "eval")
def evaluate(cfg: SSDConfig, model: str, out_dir: str | Path, *, progress: bool = True, overwrite: bool = False,
             check_first: bool = True, greedy_from: str | Path | None = None) -> dict:
    """Samples cfg.eval.n responses per problem at each T_eval and grades them. Resumable per temperature; a
    directory holding another model's, benchmark's or settings' evaluation is refused unless `overwrite`.
    `check_first`: run `preflight` before sampling (`ssd run` did it before its first stage). `greedy_from`: an
    evaluation of the same model whose greedy point this one's is (the control's greedy is plain greedy): its T0
    is copied, then found complete by its fingerprints (any difference and it is sampled again)."""
    from .sample import sample, sample_identity
    from .sampling.backends import load_engine, release

    out_dir = output_dir(out_dir)
    e = cfg.eval
    if check_first:
        preflight(cfg, model)
    temps = e.temperatures or [e.temperature]
    problems, selection = _selected_problems(cfg)
    config, inputs = evaluate_identity(cfg, model)
    earlier = read_json(out_dir / "results.json", default={})
    # an evaluation of this model on this benchmark from before simplesd kept stage records: its temperatures'
    # samples still say what made them (each is refused on its own if another config did)
    legacy = earlier.get("model") == model and earlier.get("benchmark") == e.benchmark
    Stage("evaluate", out_dir, config, inputs, work=("T*", "results.json"), bookkeeping=("problems.jsonl",),
          adopt=legacy).claim(overwrite)
    atomic_write_jsonl(out_dir / "problems.jsonl", (p.raw for p in problems))
    source = Path(greedy_from) / "T0" if greedy_from else None
    if 0 in temps and source and (source / "summary.json").is_file() and not (out_dir / "T0").exists():
        import shutil

        shutil.copytree(source, out_dir / "T0")
    results = {}
    loaded = None  # the model is loaded once for the whole sweep, and only if some temperature needs sampling
    for t in temps:
        tdir = out_dir / f"T{t:g}"
        scfg = sampling_config(cfg, model, out_dir / "problems.jsonl", t)
        if (loaded is None and scfg.sample.data_parallel_size == 1
                and not Stage("sample", tdir / "samples", *sample_identity(scfg), quiet=True).finished()):
            loaded = load_engine(scfg, _longest_prompt(scfg) if scfg.sample.backend == "vllm" else 0)
        sample(scfg, tdir / "samples", progress=progress, loaded=loaded)
        results[f"{t:g}"] = _grade_temperature(cfg, model, problems, selection, scfg, tdir, progress)
    if loaded is not None:
        release(loaded)
    table = {t: {k: v["value"] for k, v in s["overall"].items()} for t, s in results.items()}
    best = max(results, key=lambda t: results[t]["overall"]["pass@1"]["value"])
    report = {"model": model, "benchmark": e.benchmark, "by_temperature": table, "best_temperature": best,
              "best_pass@1": results[best]["overall"]["pass@1"]}
    if all("base" in s for s in results.values()):  # EvalPlus: by_temperature is base + plus
        report["base_by_temperature"] = {t: {k: v["value"] for k, v in s["base"].items()} for t, s in results.items()}
    write_json(out_dir / "results.json", report)
    return report


def control_config(cfg: SSDConfig) -> SSDConfig:
    """The no-training control arm: the same evaluation of the base, decoded with eval.decoding=ssd_equivalent
    (mirroring sample.*'s T_train / top-k / top-p unless eval.control_* are set)."""
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, decoding="ssd_equivalent"))


def control_arm(cfg: SSDConfig) -> bool:
    """Whether `ssd run` evaluates the control: eval.control, unless eval.decoding is already the control
    (then the base arm is it)."""
    return bool(cfg.eval.benchmark) and cfg.eval.control and cfg.eval.decoding == "plain"


def compare_runs(base_dir: str | Path, tuned_dir: str | Path, k: int = 1) -> dict:
    """Best-vs-best pass@k difference (tuned − base), each at its own best T_eval for pass@k (among the
    temperatures with at least k samples), paired over problems, with a bootstrap 95 % CI."""
    def best(d):
        res = read_json(Path(d) / "results.json")
        scores = {t: row[f"pass@{k}"] for t, row in res["by_temperature"].items() if f"pass@{k}" in row}
        if not scores:
            raise InputError(f"{d}: no temperature has the {k} samples per problem pass@{k} needs")
        t = max(scores, key=scores.get)
        return t, correct_by_problem(read_verdicts(Path(d) / f"T{t}" / "verdicts.jsonl"))

    tb, base = best(base_dir)
    tt, tuned = best(tuned_dir)
    return {"base_T": tb, "tuned_T": tt, **paired_difference(base, tuned, k)}


def eval_seconds(eval_dir: str | Path, copied_from: str | Path | None = None) -> float:
    """Wall time of an `evaluate` directory: every temperature's sampling and grading manifests, except those
    copied unchanged from `copied_from` (the control's greedy point is the base's: `reuse_greedy`)."""
    total = 0.0
    for m in Path(eval_dir).glob("T*/**/manifest.json"):
        twin = Path(copied_from) / m.relative_to(eval_dir) if copied_from else None
        if not (twin and twin.is_file() and twin.read_bytes() == m.read_bytes()):
            total += read_json(m)["timings_s"]["total"]
    return total


def compare_arms(eval_dir: Path, ks: list[int]) -> dict:
    """Best-vs-best differences between an `ssd run`'s evaluated arms (eval_dir/base, control, tuned), for each k:
    SSD - base (`best_vs_best_pass@k`) and, when the control was evaluated, SSD - control (`ssd_vs_control_pass@k`,
    with the control's best T as `control_T`)."""
    out = {}
    for k in ks:
        out[f"best_vs_best_pass@{k}"] = compare_runs(eval_dir / "base", eval_dir / "tuned", k)
        if (eval_dir / "control" / "results.json").is_file():
            d = compare_runs(eval_dir / "control", eval_dir / "tuned", k)
            out[f"ssd_vs_control_pass@{k}"] = {"control_T": d.pop("base_T"), **d}
    return out
