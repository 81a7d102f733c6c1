import base64
import gzip
import json
import pickle
import re
import zlib

import pytest
from conftest import HUMANEVAL, ssd

from simplesd.chat import render
from simplesd.io import InputError
from simplesd.prompts import STARTER_TEMPLATE, STDIN_TEMPLATE, load_problems, user_prompt


def _lcb_row(i, starter=""):
    private = json.dumps([{"input": "1\n", "output": "2\n", "testtype": "stdin"}])
    return {
        "question_title": f"t{i}", "question_content": f"Problem {i}: add one.", "platform": "atcoder",
        "question_id": f"abc{i}", "contest_id": "abc400", "contest_date": "2025-03-01T00:00:00",
        "starter_code": starter, "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1\n", "output": "2\n", "testtype": "stdin"}]),
        "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps(private))).decode(),
        "metadata": "{}",
    }


def test_rstar_format_and_both_templates(problems_file):
    probs = load_problems(str(problems_file))
    assert [p.id for p in probs] == [f"q{i}" for i in range(12)]
    stdin, starter = probs[0], probs[1]
    assert stdin.kind == "stdin" and starter.kind == "starter"
    assert user_prompt(stdin) == STDIN_TEMPLATE.format(question=stdin.question)
    assert "Read the inputs from stdin" in user_prompt(stdin)
    text = user_prompt(starter)
    assert text == STARTER_TEMPLATE.format(question=starter.question, starter_code=starter.starter_code)
    assert "```python\nclass Solution:\n    def f1(self, x: int) -> int:\n        \n```" in text


def test_livecodebench_format(tmp_path):
    p = tmp_path / "lcb.jsonl"
    p.write_text("\n".join(json.dumps(_lcb_row(i, "class Solution:\n    def f(self):\n" if i else "")) for i in range(3)))
    probs = load_problems(str(p))
    assert [x.id for x in probs] == ["abc0", "abc1", "abc2"]
    assert probs[0].kind == "stdin" and probs[1].kind == "starter"
    assert probs[0].meta == {"difficulty": "easy", "contest_date": "2025-03-01T00:00:00", "platform": "atcoder"}


@pytest.mark.skipif(not HUMANEVAL.is_file(), reason="needs ../shared/data/HumanEval.jsonl.gz beside the checkout (CI has it)")
def test_humaneval_real_file():
    probs = load_problems(str(HUMANEVAL))
    assert len(probs) == 164
    assert probs[0].id == "HumanEval/0" and probs[0].kind == "starter"
    assert "def has_close_elements" in user_prompt(probs[0])
    assert load_problems(str(HUMANEVAL), max_prompts=5)[-1].id == "HumanEval/4"


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "Sum two ints.", "starter_code": ""},
                                         {"question": "Reverse.", "starter_code": "def f():\n"}]), p)
    probs = load_problems(str(p))
    assert [x.id for x in probs] == ["row-0", "row-1"] and probs[1].kind == "starter"


def test_datasets_loader_path(tmp_path):
    """A folder goes through `datasets.load_dataset`, the same call that loads a hub id for users."""
    d = tmp_path / "my-dataset"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(json.dumps(_lcb_row(i)) for i in range(4)) + "\n")
    probs = load_problems(str(d), split="train")
    assert [p.id for p in probs] == ["abc0", "abc1", "abc2", "abc3"] and probs[0].kind == "stdin"
    with pytest.raises(InputError, match="loading it as a datasets hub id failed"):
        load_problems(str(d), split="validation")


def test_render_uses_the_models_template(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert render(tok, "hello") == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"question": "a"}', '{"question": "b"', '{"question": "c"}'], "problems.jsonl:2: malformed JSON"),
        (['{"question": "a"}', '{"starter_code": ""}'], "problems.jsonl:2: cannot tell the record format"),
        (['{"question": "a", "id": "x"}', '{"question": "b", "id": "x"}'], "problems.jsonl:2: duplicate problem id 'x'"),
        (['{"question": 3}'], "problems.jsonl:1: field 'question' must be a string"),
        (['{"question": "  "}'], "problems.jsonl:1: field 'question' is empty"),
        (['[1, 2]'], "problems.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_problem_files(tmp_path, lines, message):
    p = tmp_path / "problems.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        load_problems(str(p))
    assert message in str(e.value)


def test_gzip_and_missing_file(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"question": "q"}\n')
    assert load_problems(str(p))[0].question == "q"
    with pytest.raises(InputError, match="nothere.jsonl: input file not found"):
        load_problems(str(tmp_path / "nothere.jsonl"))


def test_cli_bad_prompts_exit_2(tmp_path, tiny_model):
    bad = tmp_path / "problems.jsonl"
    bad.write_text('{"question": "ok"}\nnot json\n')
    r = ssd("sample", "--model", tiny_model, "--prompts", bad, "--out", tmp_path / "s")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(f"ssd: error: {bad}:2: malformed JSON")
    assert not (tmp_path / "s" / "manifest.json").exists()
    r = ssd("sample", "--model", tiny_model, "--prompts", tmp_path / "missing.jsonl", "--out", tmp_path / "s")
    assert r.returncode == 2 and "missing.jsonl: input file not found" in r.stderr


def test_own_fields_and_chat_rows_are_read_and_checked(tmp_path):
    """prompts.fields maps a user's field names onto ours; chat rows are used as they are; a missing mapped field or
    a conversation that does not end with a user turn is one line naming the file, the record and the field."""
    from simplesd.chat import context_messages
    from simplesd.io import InputError
    from simplesd.prompts import context, read_problems

    own = tmp_path / "own.jsonl"
    own.write_text('{"uid": "a", "problem": "Add two numbers.", "id": "ignored"}\n{"uid": "b", "text": "x"}\n')
    with pytest.raises(InputError, match=r"own.jsonl:2: missing field 'problem' \(prompts.fields.question=problem\)"):
        read_problems(str(own), fields={"id": "uid", "question": "problem"})
    own.write_text('{"uid": "a", "problem": "Add two numbers.", "id": "ignored"}\n')
    (row,) = read_problems(str(own), fields={"id": "uid", "question": "problem"})
    assert row.problem.id == "a" and row.problem.question == "Add two numbers." and row.problem.kind == "stdin"
    assert context(row.problem, "Be brief.") == context_messages(user_prompt(row.problem), "Be brief.")
    chats = tmp_path / "chats.jsonl"
    convo = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A"},
             {"role": "user", "content": "U2"}]
    chats.write_text(json.dumps({"id": "c", "messages": convo}) + "\n")
    (row,) = read_problems(str(chats))
    assert context(row.problem, "ignored: the row has its own") == convo and user_prompt(row.problem) == "U2"
    assert context(read_problems(str(chats))[0].problem) == convo
    for bad, field in ((convo[:3], "messages': the last message must be a non-empty user turn"),
                       ([convo[1], convo[0], convo[3]], "messages[1].role': a system message can only come first"),
                       ([{"role": "user", "content": 3}], "messages[0].content' must be a string")):
        chats.write_text(json.dumps({"id": "c", "messages": bad}) + "\n")
        with pytest.raises(InputError, match=re.escape(f"chats.jsonl:1: field '{field}")):
            read_problems(str(chats))
