"""The `ssd` command line: a thin layer over the stage functions.

Every stage takes `--config FILE` (YAML) and any number of `key.sub=value` overrides; its `--help` lists
every config key it reads with the default and what it does. Bad input prints one line and exits with 2.
Heavy libraries are imported inside the stages, so `ssd --help` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import SSDConfig, describe, load_config, to_yaml
from .io import InputError

_SECTIONS = {
    "sample": ("model", "prompts", "sample", "eval"),  # eval: the benchmark the prompts are decontaminated against
    "decontaminate": ("prompts",),
    "filter": ("filter",),
    "train": ("model", "train"),
    "run": ("model", "prompts", "sample", "filter", "train", "eval", "analyze", "pipeline", "output_dir"),
    "sweep": ("model", "prompts", "sample", "filter", "train", "eval", "analyze"),
    "check": ("eval",),
    "evaluate": ("model", "sample", "eval"),
    "analyze": ("model", "sample", "analyze"),
    "estimate": ("model", "prompts", "sample", "filter", "train"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(kind, low, inclusive=True, high=None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value < low or (not inclusive and value == low) or (high is not None and value > high):
            where = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return value
    return parse


POSITIVE_INT, COUNT, NON_NEGATIVE = _number(int, 1), _number(int, 0), _number(float, 0.0)
POSITIVE = _number(float, 0.0, inclusive=False)

# an override each command's help shows as its example: a key that command reads
_EXAMPLE = {"sample": "sample.temperature=1.0", "decontaminate": "prompts.ngram=10", "filter": "filter.drop_shortest_fraction=0.2",
            "train": "train.learning_rate=1e-5", "run": "sample.temperature=1.0", "sweep": "train.epochs=2",
            "check": "eval.timeout=10", "evaluate": "eval.max_new_tokens=2048", "analyze": "analyze.max_texts=32",
            "estimate": "sample.max_new_tokens=16384"}
# commands that write an output directory and so take --overwrite
_WRITES = ("sample", "decontaminate", "filter", "train", "run", "sweep", "check", "evaluate", "analyze")
OVERWRITE_HELP = ("delete outputs in the output directory made with another config or other inputs, and start over "
                  "(without it they are kept and the command stops, listing the differences)")


def _keys_epilog(sections: tuple[str, ...]) -> str:
    rows = [r for r in describe() if r[0].split(".")[0] in sections]
    width = max(len(k) for k, _, _ in rows)
    lines = ["config keys (set in --config YAML or as key=value arguments):"]
    for key, default, help_text in rows:
        lines.append(f"  {key:<{width}}  {help_text} [default: {default}]")
    return "\n".join(lines)


def _parser_for(sub, name: str, help_text: str, description: str):
    p = sub.add_parser(name, help=help_text, description=description, epilog=_keys_epilog(_SECTIONS[name]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML config file (same keys as below)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=f"config overrides, e.g. {_EXAMPLE[name]}")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (simplesd's and the libraries')")
    if name in _WRITES:
        p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="ssd",
        description="Simple Self-Distillation for code LLMs: sample from the frozen model, filter barely, "
        "fine-tune on its own samples, decode at a tuned temperature.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ssd (simplesd) {__version__}, Python {sys.version.split()[0]}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _parser_for(sub, "sample", "step 1: draw N samples per problem from the frozen model",
                    "Samples cfg.sample.n solutions per problem into sharded JSONL with a manifest. The problems are "
                    "deduplicated, checked against the benchmark eval.* evaluates on (decontamination; OUT/prompts.json "
                    "lists what was dropped), shuffled by prompts.seed and capped first. Each sample is seeded from "
                    "(sample.seed, prompt id, sample index) and flagged truncated/looping/has_code/has_think. "
                    "Rerunning the same command after a crash continues where it stopped.")
    p.add_argument("--model", help="hub id or local directory (model.name_or_path)")
    p.add_argument("--prompts", help="problem file or datasets hub id (prompts.path)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--worker", metavar="I/N", help="be replica I of N: write only the missing shards I, I+N, ... "
                   "(one per node on a shared --out; then run once without --worker to write the manifest)")

    p = _parser_for(sub, "decontaminate", "flag training prompts that overlap benchmark problems",
                    "Checks every problem of a prompt file (any format `ssd sample` reads) against benchmark "
                    "problem statements: flagged when they share a run of prompts.ngram words (13; lower-cased, "
                    "whitespace and punctuation collapsed) or are equal after that normalisation. Writes "
                    "OUT/clean.jsonl (the records kept, as given), OUT/report.json (flagged: index, prompt_id, "
                    "benchmark, task_id, matched_ngrams, exact, example; counts) and OUT/manifest.json. `ssd sample` "
                    "and `ssd run` do the same against the problems they evaluate on (prompts.decontaminate).")
    p.add_argument("--prompts", help="problem file or datasets hub id (prompts.path)")
    p.add_argument("--against", action="append", default=[], metavar="BENCH:PATH", required=True,
                   help="benchmark to check against: humaneval:FILE or livecodebench:FILE (repeat for more)")
    p.add_argument("--out", required=True, help="output directory")

    p = _parser_for(sub, "filter", "step 2: drop empty and shortest samples, write train.jsonl",
                    "Filters samples (a `ssd sample` directory or a JSONL file) into train.jsonl "
                    '({"messages": [user, assistant]} per line) and stats.json.')
    p.add_argument("--samples", required=True, help="`ssd sample` output directory or a samples JSONL file")
    p.add_argument("--out", required=True, help="output directory")

    p = _parser_for(sub, "train", "step 3: SFT on the filtered samples with TRL",
                    "Fine-tunes the model on train.jsonl (loss on the assistant turn and its end-of-turn token "
                    "only). Writes OUT/model (loadable by transformers and vLLM), checkpoints and TensorBoard "
                    "logs; rerunning resumes from the last checkpoint. Launch with `accelerate launch -m "
                    "simplesd.cli train ...` for several GPUs.")
    p.add_argument("--model", help="hub id or local directory (model.name_or_path)")
    p.add_argument("--data", required=True, help="train.jsonl from `ssd filter`")
    p.add_argument("--out", required=True, help="output directory")

    p = _parser_for(sub, "run", "sample -> filter -> train (-> evaluate) in one resumable run",
                    "Runs every stage into OUT/{sample,filter,train}. Stages whose outputs are complete for "
                    "the same config and inputs are skipped, so rerunning resumes.")
    p.add_argument("--model", help="hub id or local directory (model.name_or_path)")
    p.add_argument("--prompts", help="problem file or datasets hub id (prompts.path)")
    p.add_argument("--out", help="run directory (output_dir)")
    p.add_argument("--rounds", type=POSITIVE_INT, help="iterative SSD: this many rounds, each sampling from the last "
                   "round's model, in OUT/round-R/ (pipeline.rounds; see pipeline.* for prompts, init, early stop)")

    p = _parser_for(sub, "sweep", "run the pipeline over a grid of sampling/training settings, compare pass@1",
                    "Runs `ssd run` for every point of the grid (the product of the --grid values) in "
                    "OUT/points/<point>/, all evaluated over the same T_eval sweep (the base once, in "
                    "OUT/base-eval/), skipping points already done; then writes OUT/sweep.json, sweep.csv, sweep.md "
                    "and sweep.png (heatmap of the SSD model's best pass@1 per T_train and truncation, with its "
                    "best T_eval). On a cluster: one job per point with --point I, then the same command without "
                    "--point to gather.")
    p.add_argument("--model", help="hub id or local directory (model.name_or_path)")
    p.add_argument("--prompts", help="problem file or datasets hub id (prompts.path)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and its values, e.g. sample.temperature=1.0,1.5,2.0 (repeat for more keys)")
    p.add_argument("--eval-temperatures", help="T_eval values every point is evaluated at (eval.temperatures)")
    p.add_argument("--point", type=COUNT, help="run only point I (0-based, in grid order) and stop")
    p.add_argument("--out", required=True, help="sweep directory")

    p = _parser_for(sub, "check", "grade existing generations in the sandbox",
                    "Grades solutions (JSONL with task_id and completion, the raw model response) against a "
                    "benchmark's tests in the sandboxed grader. Writes OUT/verdicts.jsonl and OUT/summary.json "
                    "(pass@k overall and by difficulty with bootstrap 95 % CIs).")
    p.add_argument("--benchmark", required=True, choices=["humaneval", "livecodebench"])
    p.add_argument("--problems", required=True, help="HumanEval JSONL(.gz) or LiveCodeBench code_generation_lite JSONL")
    p.add_argument("--solutions", required=True, help="JSONL: task_id, completion")
    p.add_argument("--out", required=True, help="output directory")

    p = _parser_for(sub, "evaluate", "generate with a model at one or more T_eval and grade",
                    "Samples eval.n responses per problem with the sampling backend and grades them in the "
                    "sandbox, per temperature (OUT/T<t>/), then writes OUT/results.json with pass@k per T_eval.")
    p.add_argument("--model", required=True, help="hub id or local directory")
    p.add_argument("--benchmark", required=True, choices=["humaneval", "livecodebench"])
    p.add_argument("--problems", required=True, help="benchmark file (or, for LiveCodeBench, its hub id)")
    p.add_argument("--n", type=POSITIVE_INT, help="samples per problem (eval.n)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--temperature", type=NON_NEGATIVE, help="one T_eval (eval.temperature)")
    g.add_argument("--sweep", help="several T_eval, e.g. 0.2,0.6,1.0 (eval.temperatures)")
    p.add_argument("--top-p", type=_number(float, 0.0, inclusive=False, high=1.0), help="eval.top_p")
    p.add_argument("--top-k", type=COUNT, help="eval.top_k (0 = off)")
    p.add_argument("--out", required=True, help="output directory")

    p = _parser_for(sub, "analyze", "teacher-force base and tuned: lock/fork token statistics",
                    "Teacher-forces both models on the same (prompt, response) texts and writes, per response "
                    "token, entropy, top-1, rank, tail mass outside the sampling support (sample.* settings), "
                    "support size and KL(tuned||base) split into tail-mass and within-support parts; classifies "
                    "positions as lock or fork (analyze.lock_threshold) and, when texts carry ground-truth spans, "
                    "scores the rule against them. Writes OUT/tokens.parquet, OUT/summary.json, OUT/plots/*.png. "
                    "With --run RUN_DIR every path defaults to that run's (its base, train/model, "
                    "filter/heldout.jsonl, analysis/).")
    p.add_argument("--run", metavar="RUN_DIR", help="take base, tuned, texts and out from an `ssd run` directory")
    p.add_argument("--base", help="base model (hub id or directory)")
    p.add_argument("--tuned", help="fine-tuned model directory")
    p.add_argument("--texts", help="JSONL: {messages: [user, assistant]} (train.jsonl, heldout.jsonl) or sample "
                   "records {prompt, output}; optional spans [[start, end, lock|fork], ...]")
    p.add_argument("--out", help="output directory")
    p.add_argument("--csv", action="store_true", help="also write tokens.csv")

    p = _parser_for(sub, "estimate", "expected sampling/training time and memory for a config",
                    "Prints planning numbers for a run: parameters (total, active), generated tokens, sampling "
                    "tokens/s and hours on vLLM, training tokens, hours and memory per GPU, each from a formula over "
                    "the model's shape and the token counts (src/simplesd/estimate.py says which).")
    p.add_argument("--model", help="hub id or local directory (model.name_or_path)")
    p.add_argument("--prompts-count", type=POSITIVE_INT, help="prompts to sample on [default: prompts.max_prompts]")
    p.add_argument("--mean-sample-tokens", type=POSITIVE, help="mean sample length [default: from --samples, "
                   "else a quarter of sample.max_new_tokens]")
    p.add_argument("--samples", help="a finished `ssd sample` directory to take the mean sample length from")
    p.add_argument("--gpus", type=POSITIVE_INT, default=8, help="GPUs [default: 8]")
    p.add_argument("--gpu", default="h100", choices=["h100", "h200", "a100"], help="GPU kind [default: h100]")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("report", help="one self-contained HTML report (and Markdown) of a run directory",
                       description="Writes RUN_DIR/report.html (images embedded, no network needed) and "
                       "RUN_DIR/report.md from what `ssd run` / `ssd demo` wrote: config and manifests, sample and "
                       "filter statistics, training curves, pass@k per T_eval for base vs SSD with CIs and per "
                       "difficulty, and the lock/fork analysis. `ssd run` and `ssd demo` write it at the end.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="an `ssd run` or `ssd demo` output directory")

    p = sub.add_parser("demo", help="SSD end to end on the shipped testbed model, offline",
                       description="Runs `ssd run` on the shipped tiny code model and its task family: evaluates "
                       "the base over a T_eval sweep, self-distils it with the paper's sampling settings, evaluates "
                       "the SSD model over the same sweep, and writes OUT/results.json (pass@1/pass@5 per T_eval, "
                       "best-vs-best difference with a 95 % bootstrap CI, self-sample correctness, greedy failure "
                       "kinds, stage times, lock/fork analyses) and OUT/report.html. About 8 minutes on 2 cores.")
    p.add_argument("--out", default="runs/demo", help="run directory [default: runs/demo]")
    p.add_argument("--quick", action="store_true", help="a fraction of the prompts, problems and temperatures "
                   "(a couple of minutes; what CI runs)")
    p.add_argument("--ablation", action="store_true", help="also run the paper's stress test: T_train 2.0, no truncation")
    p.add_argument("--base", help="a base built by `ssd testbed build` [default: the shipped one]")
    p.add_argument("--split", default="test", choices=["test", "dev"],
                   help="evaluate on the test split (default) or on dev, where the demo's knobs are chosen")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.learning_rate=3e-4")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (simplesd's and the libraries')")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    p = sub.add_parser("testbed", help="the testbed: rebuild its base model, or write a config for it",
                       description="The testbed (the shipped tiny code model and its task family).")
    tsub = p.add_subparsers(dest="testbed_command", metavar="ACTION", required=True)
    b = tsub.add_parser("build", help="rebuild the shipped base model from its config",
                        description="Generates the task splits, trains the tokenizer, pretrains the tiny Llama with "
                        "simplesd's train stage, exports it as float16 and measures dev greedy pass@1. About an hour "
                        "on 2 CPU cores, minutes on a GPU. Resumes from its last checkpoint.")
    b.add_argument("--out", default="runs/testbed-build", help="build directory [default: runs/testbed-build]")
    b.add_argument("--reduced", action="store_true", help="the same pipeline at toy size (seconds; for tests)")
    b.add_argument("--install", action="store_true", help="copy the built model into the installed package "
                   "(replacing the shipped base; for maintainers)")
    b.add_argument("--no-progress", action="store_true", help="hide progress bars (simplesd's and the libraries')")
    c = tsub.add_parser("config", help="write the testbed's task splits and a config for `ssd run` / `ssd sweep`",
                        description="Writes OUT/{ssd,dev,test}.jsonl (the shipped base's splits) and OUT/testbed.yaml: "
                        "the demo's config (the shipped base, the paper's sampling, the tiny model's LR), so every "
                        "command runs on the testbed, e.g. `ssd run --config OUT/testbed.yaml --rounds 3`.")
    c.add_argument("--out", default="runs/testbed", help="directory [default: runs/testbed]")
    c.add_argument("--quick", action="store_true", help="the demo's --quick sizes (a couple of minutes per run)")
    c.add_argument("--split", default="dev", choices=["dev", "test"], help="evaluation split [default: dev, where "
                   "settings are chosen]")

    p = sub.add_parser("config", help="show the resolved config", description="Prints the resolved config as YAML.")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print the resolved config (defaults <- --config <- overrides)",
                           epilog=_keys_epilog(_SECTIONS["run"]), formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("--config", metavar="FILE", help="YAML config file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def _config(args, extra: list[str] = ()) -> SSDConfig:
    shortcuts = []
    if getattr(args, "model", None):
        shortcuts.append(f"model.name_or_path={args.model}")
    if getattr(args, "prompts", None):
        shortcuts.append(f"prompts.path={args.prompts}")
    return load_config(args.config, [*args.overrides, *shortcuts, *extra])


def _check_sections(args, command: str) -> None:
    allowed = _SECTIONS[command]
    for o in args.overrides:
        key = o.split("=", 1)[0]
        if key.split(".")[0] not in allowed:
            raise InputError(f"config key '{key}' is not used by `ssd {command}` (it reads {', '.join(allowed)})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse, plus key=value overrides anywhere on the line (argparse alone takes them in one run only, so
    `ssd run --out X a=1 --rounds 3 b=2` would refuse b=2)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if not (hasattr(args, "overrides") and "=" in e and not e.startswith("-"))]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def hide_progress_bars() -> None:
    """--no-progress for every bar, not only simplesd's: tqdm reads TQDM_DISABLE (also in the replica and grader
    processes this one starts), and transformers, datasets and huggingface_hub have their own switches."""
    import os

    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    for module, switch in (("transformers.utils.logging", "disable_progress_bar"), ("datasets.utils.logging",
                           "disable_progress_bar"), ("huggingface_hub.utils", "disable_progress_bars")):
        mod = sys.modules.get(module)  # already imported: switch it off there too (not imported: the env does it)
        if mod is not None:
            getattr(mod, switch)()


INTERRUPTED = "ssd: interrupted; rerun the same command to resume"


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        if getattr(args, "no_progress", False):
            hide_progress_bars()
        from .execute.sandbox import SandboxError

        try:
            return _dispatch(args)
        except (InputError, SandboxError) as e:  # bad input, or a machine that cannot host the grading sandbox
            print(f"ssd: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        # every file is written atomically and every stage resumes: nothing to clean up but the message
        print(("\n" if sys.stderr.isatty() else "") + INTERRUPTED, file=sys.stderr)  # (a bar may hold the tty's line)
        return 130


def _dispatch(args) -> int:
    progress = not getattr(args, "no_progress", False)
    if getattr(args, "out", None):  # before any work: an --out that names a file is refused at once
        from .io import output_dir

        output_dir(args.out)
    if args.command == "config":
        print(to_yaml(load_config(args.config, args.overrides)), end="")
        return 0
    if args.command == "demo":
        from .testbed.demo import demo

        demo(args.out, quick=args.quick, ablation=args.ablation, base=args.base, split=args.split,
             overrides=args.overrides, progress=progress, overwrite=args.overwrite)
        return 0
    if args.command == "testbed" and args.testbed_command == "config":
        from .testbed.demo import write_testbed_config

        path = write_testbed_config(args.out, quick=args.quick, split=args.split)
        print(f"testbed config: {path}\n  ssd run --config {path} --rounds 3\n  ssd sweep --config {path} --out "
              f"{Path(args.out) / 'sweep'} --grid sample.temperature=1.0,1.5 --eval-temperatures 0,0.9")
        return 0
    if args.command == "testbed":
        from .testbed.build import BuildConfig, build, install

        built = build(args.out, BuildConfig.reduced() if args.reduced else BuildConfig(), progress=progress)
        if args.install:
            print(f"installed -> {install(args.out)}")
        return 0 if built else 1
    if args.command == "report":
        from .report import write_report

        html, md = write_report(args.run_dir)
        print(f"report: {html} (and {md})")
        return 0
    _check_sections(args, args.command)
    if args.command == "analyze":
        return _analyze(args, progress)
    if args.command == "estimate":
        return _estimate(args)
    if args.command == "sample":
        from .prompts import prompt_story
        from .sample import FLAGS, parse_worker, sample

        worker = parse_worker(args.worker)
        m = sample(_config(args), args.out, progress=progress, overwrite=args.overwrite, worker=worker)
        if m is None:
            print(f"sample: worker {args.worker} done -> {args.out}")
        else:
            c = m["counts"]
            print(f"sample: {c['samples']} samples for {c['problems']} problems -> {args.out} "
                  f"({', '.join(f'{f} {c.get(f, 0)}' for f in FLAGS)})")
            if m.get("prompts"):
                print(f"  prompts: {prompt_story(m['prompts'])} (see {args.out}/prompts.json)")
    elif args.command == "decontaminate":
        from .decontaminate import decontaminate

        m = decontaminate(_config(args), args.out, against=args.against, overwrite=args.overwrite)
        c = m["counts"]
        print(f"decontaminate: {c['flagged']} of {c['prompts']} prompts flagged, {c['kept']} kept -> {args.out}/clean.jsonl")
        for bench, b in m["by_benchmark"].items():
            print(f"  {bench}: {b['flagged_prompts']} prompts overlap {b['matched_problems']} of {b['problems']} problems "
                  f"({b['exact']} exact copies); details in {args.out}/report.json")
    elif args.command == "filter":
        from .filter import filter_samples

        m = filter_samples(_config(args), args.samples, args.out, overwrite=args.overwrite)
        c = m["counts"]
        print(f"filter: kept {c['kept']} of {c['total']}: {c['train_rows']} -> {args.out}/train.jsonl, "
              f"{c['held_out']} held out -> {args.out}/heldout.jsonl")
    elif args.command == "train":
        from .train import train

        m = train(_config(args), args.data, args.out, progress=progress, overwrite=args.overwrite)
        if m is not None:  # the main process of a multi-process launch
            print(f"train: {m['counts']['optimizer_steps']} steps, final loss {m['counts']['final_loss']} -> {args.out}/model")
    elif args.command == "check":
        from .evaluate import check

        cfg = _config(args, [f"eval.benchmark={args.benchmark}", f"eval.problems={args.problems}"])
        s = check(cfg, args.solutions, args.out, progress=progress, overwrite=args.overwrite)
        print(f"check: {sum(s['verdicts'].values())} solutions graded -> {args.out}/summary.json")
        for k, v in s["overall"].items():
            print(f"  {k}: {v['value']:.4f}  (95% CI {v['ci95'][0]:.4f}-{v['ci95'][1]:.4f}, {v['problems']} problems)")
        print("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items())))
    elif args.command == "evaluate":
        from .evaluate import evaluate

        extra = [f"eval.benchmark={args.benchmark}", f"eval.problems={args.problems}"]
        if args.n is not None:
            extra.append(f"eval.n={args.n}")
        if args.temperature is not None:
            extra += [f"eval.temperature={args.temperature}", "eval.temperatures="]
        if args.sweep is not None:
            extra.append(f"eval.temperatures={args.sweep}")
        if args.top_p is not None:
            extra.append(f"eval.top_p={args.top_p}")
        if args.top_k is not None:
            extra.append(f"eval.top_k={args.top_k}")
        cfg = _config(args, extra)
        r = evaluate(cfg, args.model, args.out, progress=progress, overwrite=args.overwrite)
        for t, row in r["by_temperature"].items():
            print(f"  T_eval {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
        print(f"evaluate: best T_eval {r['best_temperature']} -> {args.out}/results.json")
    elif args.command == "run":
        from .pipeline import run

        cfg = _config(args, ([f"output_dir={args.out}"] if args.out else [])
                      + ([f"pipeline.rounds={args.rounds}"] if args.rounds is not None else []))
        run(cfg, progress=progress, overwrite=args.overwrite)
    elif args.command == "sweep":
        from .sweep import parse_grid, sweep

        extra = [f"eval.temperatures={args.eval_temperatures}"] if args.eval_temperatures is not None else []
        r = sweep(_config(args, extra), parse_grid(args.grid), args.out, point=args.point, progress=progress,
                  overwrite=args.overwrite)
        if r is not None:
            print(f"sweep: best point {r['best']} -> {args.out}/sweep.md, sweep.png")
    return 0


def _estimate(args) -> int:
    import json

    from .estimate import estimate, format_estimate, mean_sample_tokens_from

    cfg = _config(args)
    prompts = args.prompts_count if args.prompts_count is not None else cfg.prompts.max_prompts
    if not prompts:
        raise InputError("ssd estimate: give --prompts-count (or set prompts.max_prompts)")
    mean = args.mean_sample_tokens if args.mean_sample_tokens is not None else (mean_sample_tokens_from(args.samples) if args.samples else cfg.sample.max_new_tokens / 4)
    e = estimate(cfg, prompts, mean, gpus=args.gpus, gpu=args.gpu)
    print(json.dumps(e, indent=2) if args.json else format_estimate(e))
    return 0


def _analyze(args, progress: bool) -> int:

    from .analyze import analyze
    from .io import read_json

    cfg = _config(args)
    base, tuned, texts, out = args.base, args.tuned, args.texts, args.out
    if args.run:
        run = Path(args.run)
        # the run's own model and sampling settings, then this command's --config and overrides
        cfg = load_config(args.config, args.overrides, base=load_config(run / "config.yaml"))
        base = base or cfg.model.name_or_path
        tuned = tuned or str(run / "train" / "model")
        texts = texts or str(run / "filter" / "heldout.jsonl")
        out = out or str(run / "analysis")
    for flag, value in (("--base", base), ("--tuned", tuned), ("--texts", texts), ("--out", out)):
        if not value:
            raise InputError(f"ssd analyze: {flag} is required (or give --run RUN_DIR)")
    m = analyze(cfg, base, tuned, texts, out, progress=progress, overwrite=args.overwrite, csv=args.csv)
    print(f"analyze: {m['counts']['tokens']} tokens of {m['counts']['texts']} texts -> {out}")
    print("  " + read_json(Path(out) / "summary.json")["findings"]["statement"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
