"""`ssd config show`: the resolved config."""

from __future__ import annotations

import argparse

from . import keys_epilog

STAGE, WRITES, PROGRESS = None, False, False
HELP = "show the resolved config"
DESCRIPTION = "Prints the resolved config as YAML."
ALL_SECTIONS = ("model", "prompts", "sample", "filter", "train", "eval", "analyze", "pipeline", "output_dir")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the resolved config (defaults <- --config <- overrides)",
                          epilog=keys_epilog(ALL_SECTIONS), formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("--config", metavar="FILE", help="YAML config file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def main(args) -> int:
    from ..config import load_config, to_yaml

    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0
