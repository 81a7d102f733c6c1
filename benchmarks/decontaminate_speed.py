"""Decontamination at real sizes: `ssd decontaminate` on 10,000 training prompts against 1,000 benchmark
problems (the issue's bar: under 30 s on 2 cores), with planted contamination to count what it catches.

The texts are synthetic but shaped like the real ones: LiveCodeBench-like statements of 150-450 words drawn
from a Zipf-distributed vocabulary (frequent function words, a long tail), 40 % of them (on both sides) with
AtCoder's fixed input/output/constraints boilerplate. Planted: 25 prompts each of a benchmark statement copied
verbatim, re-wrapped (whitespace), re-cased, and paraphrased around one kept 13-word run. Every other prompt is
unrelated, so any other flag is a false positive. Rows: settings (n, ngram_common); timings are the stage's own
(read, index, flag) plus the whole call.
Run by hand:  python benchmarks/decontaminate_speed.py [--prompts 10000] [--problems 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

BOILERPLATE = ("Input\n\nThe input is given from Standard Input in the following format:\n\nN M\nA_1 A_2 ... A_N\n\n"
               "Output\n\nPrint the answer.\n\nConstraints\n\n- 1 \\leq N \\leq 2 \\times 10^5\n"
               "- All input values are integers.")
FUNCTION_WORDS = "the a of to and in is that for it you are be with as on by this an each given".split()


def vocabulary(rng: random.Random, size: int = 20000) -> tuple[list[str], list[float]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = FUNCTION_WORDS + ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf
    return words, weights


def statement(rng, words, weights) -> str:
    body = " ".join(rng.choices(words, weights, k=rng.randint(150, 450)))
    lines = [body[i : i + 90] for i in range(0, len(body), 90)]
    text = "\n".join(lines)
    return text + "\n\n" + BOILERPLATE if rng.random() < 0.4 else text


def plant(kind: str, text: str, rng, words, weights) -> str:
    if kind == "verbatim":
        return text
    if kind == "rewrapped":
        return "  ".join(text.split())
    if kind == "changed case":
        return text.upper()
    kept = text.split()[40:53]  # paraphrase: new words around one 13-word run of the original
    return " ".join(rng.choices(words, weights, k=60) + kept + rng.choices(words, weights, k=60))


def build(work: Path, n_prompts: int, n_problems: int, seed: int = 0) -> tuple[Path, Path, dict[str, str]]:
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    problems = [{"question_id": f"lcb{i}", "question_content": statement(rng, words, weights), "starter_code": "",
                 "contest_date": f"2025-0{2 + i % 4}-01T00:00:00", "difficulty": ("easy", "medium", "hard")[i % 3]}
                for i in range(n_problems)]
    prompts = [{"question_id": f"p{i}", "question": statement(rng, words, weights)} for i in range(n_prompts)]
    planted = {}
    kinds = ("verbatim", "rewrapped", "changed case", "paraphrase")
    for j, i in enumerate(rng.sample(range(n_prompts), 25 * len(kinds))):
        kind, target = kinds[j % len(kinds)], rng.randrange(n_problems)
        prompts[i]["question"] = plant(kind, problems[target]["question_content"], rng, words, weights)
        planted[prompts[i]["question_id"]] = kind
    bench, train = work / "lcb.jsonl", work / "prompts.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in problems))
    train.write_text("".join(json.dumps(r) + "\n" for r in prompts))
    return train, bench, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=10000)
    ap.add_argument("--problems", type=int, default=1000)
    args = ap.parse_args()
    from simplesd import SSDConfig, decontaminate
    from simplesd.config import PromptsConfig

    work = Path(tempfile.mkdtemp(prefix="ssd-decon-"))
    train, bench, planted = build(work, args.prompts, args.problems)
    rows = []
    for n, common in ((13, 5), (13, 0), (8, 5)):
        pcfg = PromptsConfig(path=str(train), ngram=n, ngram_common=common)
        out = work / f"out-{n}-{common}"
        t0 = time.time()
        m = decontaminate(SSDConfig(prompts=pcfg), out, against=[f"livecodebench:{bench}"])
        wall = time.time() - t0
        report = json.loads((out / "report.json").read_text())
        hit = {f["prompt_id"] for f in report["flagged"]}
        caught = {k: sum(1 for p, kind in planted.items() if kind == k and p in hit) for k in set(planted.values())}
        rows.append((n, common, m["timings_s"], wall, caught, len(hit - set(planted)), report["settings"]["ignored_common_ngrams"]))
    print(f"{args.prompts} prompts vs {args.problems} problems; planted 25 of each kind\n")
    print("| n | ngram_common | read s | index s | flag s | total s (call) | verbatim | rewrapped | changed case | paraphrase | false positives | boilerplate n-grams ignored |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, common, t, wall, caught, fp, ignored in rows:
        print(f"| {n} | {common} | {t['read']:.2f} | {t['index']:.2f} | {t['flag']:.2f} | {wall:.2f} | "
              f"{caught.get('verbatim', 0)}/25 | {caught.get('rewrapped', 0)}/25 | {caught.get('changed case', 0)}/25 | "
              f"{caught.get('paraphrase', 0)}/25 | {fp} | {ignored} |")


if __name__ == "__main__":
    main()
