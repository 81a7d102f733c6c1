import gzip
import json

import pytest
from conftest import HUMANEVAL, read_jsonl, ssd

from simplesd.config import PromptsConfig, SSDConfig
from simplesd.io import InputError
from simplesd.prompts import select_prompts, words

HE = [json.loads(line) for line in gzip.open(HUMANEVAL, "rt")]
BOILERPLATE = ("\n\nInput\n\nThe input is given from Standard Input in the following format:\n\nN\nA_1 A_2 \\ldots A_N"
               "\n\nOutput\n\nPrint the answer.\n\nConstraints\n\n- 1 \\leq N \\leq 2 \\times 10^5\n"
               "- All input values are integers.")


def _testbed_prompts(n):
    """Real unrelated prompts: the shipped testbed's problem statements (rStar format)."""
    import tempfile
    from pathlib import Path

    from simplesd.testbed.artefacts import read_build_manifest, shipped_base, write_splits

    d = Path(tempfile.mkdtemp())
    rows = read_jsonl(write_splits(read_build_manifest(shipped_base()), d)["ssd"])
    return [{"question_id": r["question_id"], "question": r["question_content"], "starter_code": r["starter_code"]}
            for r in rows[:n]]


def _planted():
    docstring = HE[3]["prompt"].split('"""')[1]  # below_zero's docstring
    kept = " ".join(words(docstring)[:13])  # a 13-word run of it (words as decontamination counts them)
    return [
        {"question_id": "verbatim", "question": HE[0]["prompt"]},
        {"question_id": "rewrapped", "question": "\n   ".join(HE[1]["prompt"].split())},
        {"question_id": "changed-case", "question": HE[2]["prompt"].upper()},
        {"question_id": "paraphrase", "question": f"Write a function for a bank. {kept}, and you must say so."},
        {"question_id": "twelve-words", "question": f"Write a function for a bank. {' '.join(kept.split()[:12])} etc."},
    ]


def test_planted_contamination_is_flagged_and_unrelated_prompts_are_not(tmp_path):
    rows = _planted() + _testbed_prompts(200)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = ssd("decontaminate", "--prompts", prompts, "--against", f"humaneval:{HUMANEVAL}", "--out", tmp_path / "d",
            check=True)
    assert "4 of 205 prompts flagged, 201 kept" in r.stdout
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    flagged = {f["prompt_id"]: f for f in report["flagged"]}
    assert set(flagged) == {"verbatim", "rewrapped", "changed-case", "paraphrase"}  # not 12 words, not the testbed
    assert [f["index"] for f in report["flagged"]] == [0, 1, 2, 3]
    assert {p: f["task_id"] for p, f in flagged.items()} == {"verbatim": "HumanEval/0", "rewrapped": "HumanEval/1",
                                                             "changed-case": "HumanEval/2", "paraphrase": "HumanEval/3"}
    assert flagged["verbatim"]["exact"] and flagged["changed-case"]["exact"] and not flagged["paraphrase"]["exact"]
    assert flagged["paraphrase"]["matched_ngrams"] == 1 and flagged["verbatim"]["matched_ngrams"] > 20
    assert set(report["flagged"][0]) == {"index", "prompt_id", "benchmark", "task_id", "matched_ngrams", "exact", "example"}
    assert report["counts"] == {"prompts": 205, "flagged": 4, "kept": 201,
                                "by_benchmark": {"humaneval": {"problems": 164, "flagged_prompts": 4,
                                                               "matched_problems": 4, "exact": 3}}}
    # clean.jsonl: the other records, exactly as given
    assert read_jsonl(tmp_path / "d" / "clean.jsonl") == rows[4:]
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["counts"]["flagged"] == 4 and set(m["inputs"]) == {"prompts", "decontaminate:humaneval:0"}
    # n is configurable: at 14 words the paraphrase's 13-word run is no longer evidence
    ssd("decontaminate", "--prompts", prompts, "--against", f"humaneval:{HUMANEVAL}", "--out", tmp_path / "d14",
        "prompts.ngram=14", check=True)
    assert "paraphrase" not in {f["prompt_id"] for f in json.loads((tmp_path / "d14" / "report.json").read_text())["flagged"]}


def test_shared_boilerplate_is_not_contamination(tmp_path):
    """AtCoder-style problems share their I/O and constraints sections: with other texts they are not flagged;
    a copied statement still is, and with ngram_common=0 (count everything) the boilerplate flags them all."""
    import lcb_fixtures

    texts = [f"Takahashi has {w} cards and wants the {v} of them." for w, v in
             [("red", "sum"), ("blue", "largest"), ("green", "median"), ("white", "product"), ("black", "count"), ("gold", "xor")]]
    bench = tmp_path / "lcb.jsonl"
    bench.write_text("".join(json.dumps(lcb_fixtures.row(f"abc{i}", t + BOILERPLATE, [{"input": "1", "output": "1"}]))
                             + "\n" for i, t in enumerate(texts)))
    prompts = tmp_path / "p.jsonl"
    unrelated = [f"Aoki counts {w} stones in a row of length N." + BOILERPLATE for w in ("ten", "many", "odd")]
    prompts.write_text("".join(json.dumps({"question_id": f"u{i}", "question": q}) + "\n" for i, q in enumerate(unrelated))
                       + json.dumps({"question_id": "copy", "question": texts[2] + BOILERPLATE}) + "\n")
    ssd("decontaminate", "--prompts", prompts, "--against", f"livecodebench:{bench}", "--out", tmp_path / "d", check=True)
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert [(f["prompt_id"], f["task_id"]) for f in report["flagged"]] == [("copy", "abc2")]
    assert report["settings"]["ignored_common_ngrams"] > 10
    ssd("decontaminate", "--prompts", prompts, "--against", f"livecodebench:{bench}", "--out", tmp_path / "all",
        "prompts.ngram_common=0", check=True)
    assert len({f["prompt_id"] for f in json.loads((tmp_path / "all" / "report.json").read_text())["flagged"]}) == 4


def test_bad_decontaminate_input_is_one_line_and_exit_2(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"question_id": "a", "question": "q"}) + "\n")
    r = ssd("decontaminate", "--prompts", prompts, "--against", "apps:x.jsonl", "--out", tmp_path / "d")
    assert r.returncode == 2 and r.stderr.strip() == (
        "ssd: error: --against: expected BENCH:PATH with BENCH one of humaneval, humaneval+, mbpp, mbpp+, livecodebench, "
        "codecontests, custom, got 'apps:x.jsonl'")
    r = ssd("decontaminate", "--prompts", prompts, "--against", f"humaneval:{tmp_path / 'none.jsonl'}", "--out", tmp_path / "d")
    assert r.returncode == 2 and "none.jsonl" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "clean.jsonl").exists()


def _prompt_cfg(path, **kw):
    return PromptsConfig(path=str(path), **kw)


def test_dedup_keeps_statements_that_differ_in_punctuation(tmp_path):
    """On code, punctuation is content: HumanEval/61 differs from /56 only in "()" vs "<>". Only case and whitespace
    are normalised; all 164 real HumanEval prompts are distinct problems and all are kept."""
    rows = [{"question_id": "a", "question": "Return x < y."}, {"question_id": "b", "question": "Return x > y."},
            {"question_id": "c", "question": "return  X < y."}]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ps = select_prompts(_prompt_cfg(p))
    assert sorted(x.id for x in ps.problems) == ["a", "b"] and ps.duplicates[0]["prompt_id"] == "c"
    ps = select_prompts(_prompt_cfg(HUMANEVAL, format="humaneval"))
    assert ps.counts["selected"] == 164 and not ps.duplicates
    assert {"HumanEval/56", "HumanEval/61"} <= {x.id for x in ps.problems}


def test_prompt_hygiene_dedup_shuffle_cap(tmp_path):
    unique = [{"question_id": f"q{i}", "question": f"Problem number {i}: add the numbers."} for i in range(20)]
    rows = list(unique)
    rows.insert(5, {"question_id": "dup-exact", "question": rows[3]["question"]})
    rows.insert(9, {"question_id": "dup-norm", "question": "PROBLEM   number 4:\n add the Numbers."})  # case, spaces
    rows.insert(12, {"question_id": "q7", "question": rows[8]["question"]})  # rStar: one problem, several rows
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ps = select_prompts(_prompt_cfg(p))
    assert ps.counts == {"read": 23, "exact_duplicates": 2, "normalised_duplicates": 1, "clean": 20, "offset": 0,
                         "selected": 20}
    assert [(d["prompt_id"], d["duplicate_of"], d["kind"]) for d in ps.duplicates] == [
        ("dup-exact", "q3", "exact"), ("dup-norm", "q4", "normalised"), ("q7", "q7", "exact")]
    ids = [p.id for p in ps.problems]
    assert sorted(ids) == sorted(f"q{i}" for i in range(20)) and ids != sorted(ids, key=lambda x: int(x[1:]))
    # stable: the same seed gives the same order, whatever the file order; another seed another order
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in unique[::-1]))
    assert [x.id for x in select_prompts(_prompt_cfg(tmp_path / "r.jsonl")).problems] == ids
    assert [x.id for x in select_prompts(_prompt_cfg(p, seed=1)).problems] != ids
    # the cap takes the first N of that order; offset the next slice; a grown file keeps the others' order
    assert [x.id for x in select_prompts(_prompt_cfg(p, max_prompts=5)).problems] == ids[:5]
    assert [x.id for x in select_prompts(_prompt_cfg(p, max_prompts=5, offset=5)).problems] == ids[5:10]
    with open(tmp_path / "r.jsonl", "a") as f:
        f.write(json.dumps({"question_id": "new", "question": "A new problem."}) + "\n")
    assert [x for x in (y.id for y in select_prompts(_prompt_cfg(tmp_path / "r.jsonl")).problems) if x != "new"] == ids
    # off: file order, duplicates kept (an id used twice is then an error naming both rows)
    with pytest.raises(InputError, match=r"p.jsonl:13: duplicate problem id 'q7' \(first at .*p.jsonl:9\)"):
        select_prompts(_prompt_cfg(p, dedup=False))
    rows[12]["question"] = "Another text under a used id."
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="duplicate problem id 'q7'"):
        select_prompts(_prompt_cfg(p))
    with pytest.raises(InputError, match=r"no prompts left to sample on \(21 read, 21 skipped by prompts.offset, 0 selected\)"):
        select_prompts(_prompt_cfg(tmp_path / "r.jsonl", offset=40))


def test_sampling_drops_prompts_that_overlap_the_evaluation(tmp_path, tiny_model, caplog):
    """`ssd sample` (so `ssd run`) checks its prompts against the benchmark it will be evaluated on: flagged ones
    are dropped and listed, or kept with a warning; a set that is empty after that is an error."""
    from simplesd.sample import sample

    he4 = tmp_path / "he.jsonl"
    he4.write_text("".join(json.dumps(r) + "\n" for r in HE[:4]))
    rows = _planted()[:3] + _testbed_prompts(5)
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SSDConfig()
    cfg.model.name_or_path, cfg.prompts.path = str(tiny_model), str(p)
    cfg.eval.benchmark, cfg.eval.problems = "humaneval", str(he4)
    cfg.sample.max_new_tokens = 4
    m = sample(cfg, tmp_path / "s", progress=False)
    assert m["counts"]["problems"] == 5 and m["prompts"]["contaminated"] == 3 and m["prompts"]["selected"] == 5
    assert "decontaminate:humaneval:0" in m["inputs"]
    plan = json.loads((tmp_path / "s" / "plan.json").read_text())
    assert not {"verbatim", "rewrapped", "changed-case"} & {i for s in plan["shards"] for i in s}
    rep = json.loads((tmp_path / "s" / "prompts.json").read_text())["decontamination"]
    assert rep["action"] == "dropped" and rep["counts"]["flagged"] == 3
    assert [f["prompt_id"] for f in rep["flagged"]] == ["verbatim", "rewrapped", "changed-case"]
    # kept on request, loudly
    cfg.prompts.keep_contaminated = True
    caplog.clear()
    m = sample(cfg, tmp_path / "k", progress=False)
    assert m["counts"]["problems"] == 8 and m["prompts"]["contaminated_kept"] == 3
    assert "KEPT because prompts.keep_contaminated=true" in caplog.text
    # nothing left to train on is an error, before anything is sampled
    only = tmp_path / "only.jsonl"
    only.write_text("".join(json.dumps(r) + "\n" for r in _planted()[:3]))
    cfg.prompts.path, cfg.prompts.keep_contaminated = str(only), False
    with pytest.raises(InputError, match=r"no prompts left to sample on \(3 read, 3 contaminated dropped"):
        sample(cfg, tmp_path / "e", progress=False)
    assert not list((tmp_path / "e").glob("shard-*.jsonl"))
