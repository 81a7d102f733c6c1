"""One module per `ssd` command. Each module has:

    HELP, DESCRIPTION   the one-line help and the --help text
    STAGE               the stage function it runs (its `config_sections`, from `config.reads`, are the config keys
                        the command takes as --config/key=value and lists in --help; None: no config)
    EXAMPLE             an override its --help shows (a key of those sections)
    WRITES              whether it writes an output directory (then it takes --overwrite)
    add_arguments(p)    its own flags
    main(args) -> int   what it does, given the parsed arguments

`cli.py` is the registry: it builds each command's parser from these (`add_command`) and calls its `main`. To add a
command, add a module here and its name to `cli.COMMANDS`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import SSDConfig, describe, load_config
from ..io import InputError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def number(kind, low, inclusive=True, high=None):
    """An argparse type: an int or float in a range, with the range in the error."""
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


POSITIVE_INT, COUNT, NON_NEGATIVE = number(int, 1), number(int, 0), number(float, 0.0)
POSITIVE = number(float, 0.0, inclusive=False)
PROBABILITY = number(float, 0.0, inclusive=False, high=1.0)
OVERWRITE_HELP = ("delete outputs in the output directory made with another config or other inputs, and start over "
                  "(without it they are kept and the command stops, listing the differences)")
NO_PROGRESS_HELP = "hide progress bars (simplesd's and the libraries')"
MODEL_HELP = "hub id or local directory (model.name_or_path)"
PROMPTS_HELP = "problem file or datasets hub id (prompts.path)"


def keys_epilog(sections: tuple[str, ...]) -> str:
    rows = [r for r in describe() if r[0].split(".")[0] in sections]
    width = max(len(k) for k, _, _ in rows)
    lines = ["config keys (set in --config YAML or as key=value arguments):"]
    for key, default, help_text in rows:
        lines.append(f"  {key:<{width}}  {help_text} [default: {default}]")
    return "\n".join(lines)


def sections_of(module) -> tuple[str, ...] | None:
    stage = getattr(module, "STAGE", None)
    return getattr(stage, "config_sections", None)


def add_command(sub, name: str, module) -> argparse.ArgumentParser:
    """The command's parser: its HELP and DESCRIPTION, the config arguments when it reads a config, --overwrite when
    it writes, --no-progress, then its own flags."""
    sections = sections_of(module)
    p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                       epilog=keys_epilog(sections) if sections else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if sections:
        p.add_argument("--config", metavar="FILE", help="YAML config file (same keys as below)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help=f"config overrides, e.g. {module.EXAMPLE}")
    if getattr(module, "PROGRESS", True):
        p.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    if getattr(module, "WRITES", False):
        p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    module.add_arguments(p)
    p.set_defaults(command_module=module)
    return p


def check_sections(args, command: str, sections: tuple[str, ...]) -> None:
    """A key=value override of a section the command does not read is refused (it would silently do nothing)."""
    for o in getattr(args, "overrides", []):
        key = o.split("=", 1)[0]
        if key.split(".")[0] not in sections:
            raise InputError(f"config key '{key}' is not used by `ssd {command}` (it reads {', '.join(sections)})")


def config_from(args, **values: Any) -> SSDConfig:
    """defaults <- --config <- key=value overrides <- the command's own flags (`values`: {config key: typed value},
    None = not given); --model and --prompts, where the command has them, set model.name_or_path and prompts.path."""
    if getattr(args, "model", None):
        values["model.name_or_path"] = args.model
    if getattr(args, "prompts", None):
        values["prompts.path"] = args.prompts
    return load_config(args.config, args.overrides, values={k: v for k, v in values.items() if v is not None})


def progress(args) -> bool:
    return not getattr(args, "no_progress", False)
