"""The `ssd` command line: a registry of the commands in `simplesd.commands`, one module each.

Every stage command takes `--config FILE` (YAML) and any number of `key.sub=value` overrides of the config
sections its stage reads; its `--help` lists every such key with the default and what it does. Bad input prints
one line and exits with 2; work that failed otherwise (a crashed sampling replica) exits with 1. Heavy libraries
are imported inside the stages, so `ssd --help` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .commands import Parser, add_command, check_sections, sections_of
from .io import InputError, StageFailed

# the commands, in the order `ssd --help` lists them: simplesd/commands/<name>.py each
COMMANDS = ("sample", "decontaminate", "filter", "train", "run", "sweep", "check", "evaluate", "analyze", "estimate",
            "report", "export", "push", "demo", "testbed", "config")
INTERRUPTED = "ssd: interrupted; rerun the same command to resume"


def command_module(name: str):
    return importlib.import_module(f".commands.{name}", __package__)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="ssd",
        description="Simple Self-Distillation for code LLMs: sample from the frozen model, filter barely, "
        "fine-tune on its own samples, decode at a tuned temperature.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ssd (simplesd) {__version__}, Python {sys.version.split()[0]}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        add_command(sub, name, command_module(name))
    return parser


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
    """No redrawing bar from any library (--no-progress, or output that is not a terminal): tqdm reads TQDM_DISABLE
    (also in the replica and grader processes this one starts), and transformers, datasets and huggingface_hub
    have their own switches."""
    import os

    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    for module, switch in (("transformers.utils.logging", "disable_progress_bar"), ("datasets.utils.logging",
                           "disable_progress_bar"), ("huggingface_hub.utils", "disable_progress_bars")):
        mod = sys.modules.get(module)  # already imported: switch it off there too (not imported: the env does it)
        if mod is not None:
            getattr(mod, switch)()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        for chatty in ("httpx", "httpx2", "httpcore"):  # a line per HTTP request (huggingface_hub's client)
            logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        from .progress import interactive

        if getattr(args, "no_progress", False) or not interactive():
            hide_progress_bars()  # (not a terminal: simplesd's own progress is then lines, `progress.bar`)
        from .execute.sandbox import SandboxError

        try:
            return dispatch(args)
        except (InputError, SandboxError) as e:  # bad input, or a machine that cannot host the grading sandbox
            print(f"ssd: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        except StageFailed as e:
            print(f"ssd: failed: {' '.join(str(e).split())}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        # every file is written atomically and every stage resumes: nothing to clean up but the message
        print(("\n" if sys.stderr.isatty() else "") + INTERRUPTED, file=sys.stderr)  # (a bar may hold the tty's line)
        return 130


def dispatch(args) -> int:
    """Runs the parsed command: an --out that names a file is refused before any work, and overrides of config
    sections the command's stage does not read are refused."""
    module = args.command_module
    if getattr(args, "out", None):
        from .io import output_dir

        output_dir(args.out)
    sections = sections_of(module)
    if sections:
        check_sections(args, args.command, sections)
    return module.main(args)


if __name__ == "__main__":
    sys.exit(main())
