"""`ssd report`: one self-contained HTML report of a run directory."""

from __future__ import annotations

STAGE, WRITES, PROGRESS = None, False, False
HELP = "one self-contained HTML report (and Markdown) of a run directory"
DESCRIPTION = ("Writes RUN_DIR/report.html (images embedded, no network needed) and "
               "RUN_DIR/report.md from what `ssd run` / `ssd demo` wrote: config and manifests, sample and "
               "filter statistics, training curves, pass@k per T_eval for base vs SSD with CIs and per "
               "difficulty, and the lock/fork analysis. `ssd run` and `ssd demo` write it at the end.")


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="an `ssd run` or `ssd demo` output directory")


def main(args) -> int:
    from ..report import write_report

    html, md = write_report(args.run_dir)
    print(f"report: {html} (and {md})")
    return 0
