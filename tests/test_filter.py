import json

import pytest
from conftest import read_jsonl, ssd

from simplesd.config import FilterConfig, SSDConfig
from simplesd.filter import filter_samples
from simplesd.io import InputError


def _write_samples(path, outputs):
    with open(path, "w") as f:
        for i, (out, length) in enumerate(outputs):
            f.write(json.dumps({"prompt_id": f"p{i}", "sample_index": 0, "prompt": f"Question {i}?\n```python\n# x\n```",
                                "output": out, "completion_tokens": length, "finish_reason": "stop"}) + "\n")


def test_empty_and_shortest_ten_percent(tmp_path):
    # 2 empty, 20 with lengths 1..20 (listed in a shuffled order)
    lengths = [7, 3, 20, 1, 15, 2, 9, 11, 4, 18, 5, 6, 8, 10, 12, 13, 14, 16, 17, 19]
    outputs = [("", 1), ("  \n", 2)] + [(f"```python\nprint({n})\n```" if n % 2 else f"print({n})", n) for n in lengths]
    _write_samples(tmp_path / "s.jsonl", outputs)
    m = filter_samples(SSDConfig(filter=FilterConfig(holdout_fraction=0.0)), tmp_path / "s.jsonl", tmp_path / "f")
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    assert stats["total"] == 22 and stats["kept"] == 18 and stats["held_out"] == 0
    assert stats["dropped"] == {"empty": 2, "truncated": 0, "looping": 0, "no_code_block": 0, "no_think": 0,
                                "duplicate": 0, "shortest": 2}
    assert stats["length_tokens"]["shortest_kept"] == 3  # lengths 1 and 2 dropped: floor(0.1 * 20) = 2
    assert sum(stats["length_tokens"]["all"]["counts"]) == 22
    assert sum(stats["length_tokens"]["kept"]["counts"]) == 18 and sum(stats["length_tokens"]["dropped"]["counts"]) == 4
    assert m["counts"]["kept"] == 18 and m["counts"]["dropped_shortest"] == 2
    rows = read_jsonl(tmp_path / "f" / "train.jsonl")
    assert len(rows) == 18
    src = read_jsonl(tmp_path / "s.jsonl")
    by_id = {r["prompt_id"]: r for r in src}
    for row in rows:
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": by_id[row["prompt_id"]]["prompt"]}  # byte-identical prompt
        assert assistant == {"role": "assistant", "content": by_id[row["prompt_id"]]["output"]}
    assert [r["prompt_id"] for r in rows] == [r["prompt_id"] for r in src if r["completion_tokens"] >= 3 and r["output"].strip()]


def test_code_block_and_dedup_options(tmp_path):
    outputs = [("```python\nx = 1\n```", 10), ("no code here", 11), ("```python\nx = 1\n```", 10), ("```\ny\n```", 12)]
    _write_samples(tmp_path / "s.jsonl", outputs)
    # same prompt for the duplicate pair
    rows = read_jsonl(tmp_path / "s.jsonl")
    rows[2]["prompt"] = rows[0]["prompt"]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FilterConfig(require_code_block=True, dedup=True, drop_shortest_fraction=0.0, holdout_fraction=0.0)
    filter_samples(SSDConfig(filter=cfg), tmp_path / "s.jsonl", tmp_path / "f")
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    assert stats["dropped"] == {"empty": 0, "truncated": 0, "looping": 0, "no_code_block": 1, "no_think": 0,
                                "duplicate": 1, "shortest": 0}
    assert [r["prompt_id"] for r in read_jsonl(tmp_path / "f" / "train.jsonl")] == ["p0", "p3"]
    # off by default, like the paper
    filter_samples(SSDConfig(filter=FilterConfig(drop_shortest_fraction=0.0, holdout_fraction=0.0)), tmp_path / "s.jsonl", tmp_path / "g")
    assert len(read_jsonl(tmp_path / "g" / "train.jsonl")) == 4


def test_flags_are_counted_and_each_can_be_dropped(tmp_path):
    loop = "```python\n" + "x = x + 1\n" * 60 + "```"
    think = "<think>\nplan it\n</think>\n\n```python\nprint(1)\n```"
    outputs = [("```python\nprint(1)\n```", 10), ("print(2)", 11), (think, 30), (loop, 400), ("```python\nprint(", 512)]
    _write_samples(tmp_path / "s.jsonl", outputs)
    rows = read_jsonl(tmp_path / "s.jsonl")
    rows[4]["finish_reason"] = "length"  # hit the cap mid-line
    # the sampler's own flags; the last record has none and gets them from its text
    rows[3].update(truncated=False, looping=True, has_code=True, has_think=False)
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = dict(drop_shortest_fraction=0.0, holdout_fraction=0.0)
    filter_samples(SSDConfig(filter=FilterConfig(**base)), tmp_path / "s.jsonl", tmp_path / "all")
    stats = json.loads((tmp_path / "all" / "stats.json").read_text())
    assert stats["kept"] == 5  # all off by default: the paper kept them
    assert stats["flags"] == {"truncated": {"all": 1, "kept": 1}, "looping": {"all": 1, "kept": 1},
                              "has_code": {"all": 3, "kept": 3}, "has_think": {"all": 1, "kept": 1},
                              "reasoning_unclosed": {"all": 0, "kept": 0}}
    hist = stats["length_tokens"]
    assert sum(hist["truncated"]["counts"]) == 1 and sum(hist["has_code"]["counts"]) == 3
    assert hist["truncated"]["edges"] == hist["all"]["edges"]
    expect = {"drop_truncated": ({"p4"}, "truncated"), "drop_looping": ({"p3"}, "looping"),
              "require_code_block": ({"p1", "p4"}, "no_code_block"), "require_think": ({"p0", "p1", "p3", "p4"}, "no_think")}
    for switch, (gone, reason) in expect.items():
        out = tmp_path / switch
        m = filter_samples(SSDConfig(filter=FilterConfig(**base, **{switch: True})), tmp_path / "s.jsonl", out)
        kept = {r["prompt_id"] for r in read_jsonl(out / "train.jsonl")}
        assert kept == {f"p{i}" for i in range(5)} - gone, switch
        assert m["counts"][f"dropped_{reason}"] == len(gone)


def test_bad_samples_name_file_line_field(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"prompt_id": "a", "prompt": "q", "output": "x", "completion_tokens": 3}\n'
                 '{"prompt_id": "b", "prompt": "q", "completion_tokens": 3}\n')
    with pytest.raises(InputError, match=r"s.jsonl:2: missing field 'output'"):
        filter_samples(SSDConfig(filter=FilterConfig()), p, tmp_path / "f")
    p.write_text('{"prompt_id": "a", "prompt": "q", "output": "x", "completion_tokens": "3"}\n')
    with pytest.raises(InputError, match=r"s.jsonl:1: field 'completion_tokens' must be int"):
        filter_samples(SSDConfig(filter=FilterConfig()), p, tmp_path / "f")
    p.write_text('{"prompt_id": "a", "prompt": "q", "output": " ", "completion_tokens": 3}\n')
    with pytest.raises(InputError, match="every sample was filtered out"):
        filter_samples(SSDConfig(filter=FilterConfig()), p, tmp_path / "f")
    assert not (tmp_path / "f" / "train.jsonl").exists()
    r = ssd("filter", "--samples", tmp_path / "nope", "--out", tmp_path / "f")
    assert r.returncode == 2 and r.stderr.strip() == f"ssd: error: {tmp_path / 'nope'}: samples not found (a sample directory or a JSONL file)"
    p.write_text('{"prompt_id": "a", "prompt": "q", "output": "x", "completion_tokens": 3}\n{oops\n')
    r = ssd("filter", "--samples", p, "--out", tmp_path / "f")
    assert r.returncode == 2 and r.stderr.strip().startswith(f"ssd: error: {p}:2: malformed JSON")
    r = ssd("filter", "--samples", p, "--out", tmp_path / "f", "sample.n=3")
    assert r.returncode == 2 and "not used by `ssd filter`" in r.stderr


def test_heldout_prompts_are_untrained_and_stable(tmp_path):
    outputs = [(f"print({n})" + " " * n, 10 + n) for n in range(40)]
    _write_samples(tmp_path / "s.jsonl", outputs)
    m = filter_samples(SSDConfig(filter=FilterConfig(holdout_fraction=0.1)), tmp_path / "s.jsonl", tmp_path / "f")
    train = read_jsonl(tmp_path / "f" / "train.jsonl")
    held = read_jsonl(tmp_path / "f" / "heldout.jsonl")
    # 40 samples, 4 shortest dropped, ceil(0.1 x 36) = 4 prompts held out and not trained on
    assert (m["counts"]["kept"], m["counts"]["held_out"], m["counts"]["train_rows"]) == (36, 4, 32)
    assert len(train) == 32 and len(held) == 4
    assert not {r["prompt_id"] for r in held} & {r["prompt_id"] for r in train}
    # the same prompts are held out when the file order changes
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    (tmp_path / "r.jsonl").write_text("\n".join(lines[::-1]) + "\n")
    filter_samples(SSDConfig(filter=FilterConfig(holdout_fraction=0.1)), tmp_path / "r.jsonl", tmp_path / "g")
    assert {r["prompt_id"] for r in read_jsonl(tmp_path / "g" / "heldout.jsonl")} == {r["prompt_id"] for r in held}
    # never the whole training set
    filter_samples(SSDConfig(filter=FilterConfig(holdout_fraction=0.99)), tmp_path / "s.jsonl", tmp_path / "h")
    assert len(read_jsonl(tmp_path / "h" / "train.jsonl")) == 1
