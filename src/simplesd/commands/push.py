"""`ssd push`: a run to the Hugging Face Hub."""

from __future__ import annotations

from .export import add_share_arguments

STAGE, WRITES, PROGRESS = None, False, False
HELP = "upload a finished run's model and dataset, with their cards, to the Hugging Face Hub"
DESCRIPTION = ("`ssd export` into RUN_DIR/hub, then huggingface_hub's create_repo and upload_folder: the model to "
               "--repo-id, the filtered samples to --dataset-repo-id (default REPO_ID-samples). The token is "
               "huggingface_hub's: HF_TOKEN, or `hf auth login`. train.push_to_hub=true does this at the end of "
               "`ssd train` and `ssd run`.")


def add_arguments(p) -> None:
    add_share_arguments(p)
    p.add_argument("--repo-id", required=True, help="the model repo, NAMESPACE/NAME (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repos private (an existing repo keeps its visibility)")


def main(args) -> int:
    from ..config import HUB_REPO_ID
    from ..io import InputError
    from ..share import push, summary_lines

    for flag, rid in (("--repo-id", args.repo_id), ("--dataset-repo-id", args.dataset_repo_id)):
        if rid and not HUB_REPO_ID.fullmatch(rid):
            raise InputError(f"{flag}: expected a Hub repo id NAMESPACE/NAME, got {rid!r}")
    record = push(args.run_dir, args.repo_id, dataset_id=args.dataset_repo_id, private=args.private,
                  base_model=args.base_model, dataset=not args.no_dataset)
    for line in summary_lines(record):
        print(f"push: {line}")
    for kind, url in record["pushed"].items():
        print(f"push: {kind} {url}")
    return 0
