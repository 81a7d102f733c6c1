"""`ssd export`: a run as Hub-ready folders, to upload later."""

from __future__ import annotations

STAGE, WRITES, PROGRESS = None, True, False
HELP = "a finished run as a Hub-ready model folder and dataset folder, with their cards (no network)"
DESCRIPTION = ("Writes OUT/model (the SSD model, README.md model card with the run's settings, prompts, evaluation "
               "table with CIs for every arm and the analysis; generation_config.json at the SSD arm's tuned T_eval) "
               "and OUT/dataset (the filtered samples as a `datasets` parquet dataset with its README.md card; TRL's "
               "`trl sft --dataset_name OUT/dataset` trains on it exactly as `ssd train` did). Upload later with "
               "`ssd push`, or `hf upload REPO OUT/model` and `hf upload REPO OUT/dataset --repo-type dataset`.")


def add_arguments(p) -> None:
    add_share_arguments(p)
    p.add_argument("--out", required=True, help="output directory (empty, or an earlier export of the same run)")
    p.add_argument("--repo-id", help="the model's Hub id, used in the cards' links and code [default: the local path]")


def add_share_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="an `ssd run`, `ssd demo`, `ssd run --rounds N` (its last round) "
                   "or `ssd train` output directory")
    p.add_argument("--dataset-repo-id", help="the dataset's Hub id [default: REPO_ID-samples]")
    p.add_argument("--base-model", help="the base model's Hub id, for the card's base_model (when the run used a local "
                   "directory; a Hugging Face cache snapshot and a hub id are recognised)")
    p.add_argument("--no-dataset", action="store_true", help="the model only")


def main(args) -> int:
    from ..share import export, summary_lines

    record = export(args.run_dir, args.out, repo_id=args.repo_id, dataset_id=args.dataset_repo_id,
                    base_model=args.base_model, dataset=not args.no_dataset, overwrite=args.overwrite)
    for line in summary_lines(record):
        print(f"export: {line}")
    print(f"export: {args.out}/model" + (f" and {args.out}/dataset" if record.get("dataset_rows") else "")
          + f" (cards: README.md in each; {args.out}/export.json)")
    return 0
