"""The testbed's task family: rule-table programs, in LiveCodeBench's record format.

A problem states K ordered rules ("if it is divisible by 7, multiply it by 3") and a default; the program
changes every number of a list by the first rule that applies, then returns or prints the list or its sum.
Two kinds, as in the paper's benchmarks: function tasks (LeetCode-style `class Solution` starter code, graded
call-based) and stdin/stdout tasks. Hidden tests exercise every rule (a witness per rule, boundary values),
so a pass needs the whole program right; a constant or identity program scores ~0 (`prior_baselines`).

Why this family (see shared/notes/testbed-feasibility.md): outputs are long (K = 2..8 rules, ~60-220
tokens) and made of near-identical lines, which is where a small model's greedy decoding loops or skips;
every rule is learnable by copying from the statement. Reference solutions come in several correct styles
(*forks*: loop vs helper function, variable and accumulator names) and carry exact details that must be
copied (*locks*: constants, operators, names, output format); each reference records those character spans.

Splits are fixed by seed and disjoint by problem key; pretraining never sees HELD_OUT (condition, action)
pairs, which the SSD/dev/test splits do contain (`unseen_pair` in metadata).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from ..execute.rules import extract_code

# condition kind -> (statement text, code, parameter range)
CONDITIONS = {
    "div": ("it is divisible by {c}", "{v} % {c} == 0", (2, 9)),
    "gt": ("it is greater than {c}", "{v} > {c}", (10, 89)),
    "lt": ("it is less than {c}", "{v} < {c}", (10, 89)),
    "end": ("its last digit is {c}", "{v} % 10 == {c}", (0, 9)),
}
# action kind -> (statement text, code, parameter range)
ACTIONS = {
    "add": ("add {c} to it", "{v} + {c}", (1, 30)),
    "sub": ("subtract {c} from it", "{v} - {c}", (1, 30)),
    "mul": ("multiply it by {c}", "{v} * {c}", (2, 9)),
    "fdiv": ("divide it by {c}, rounding down", "{v} // {c}", (2, 9)),
    "mod": ("replace it by its remainder modulo {c}", "{v} % {c}", (2, 9)),
    "set": ("replace it by {c}", "{c}", (0, 99)),
}
KEEP = "keep"  # default action: leave the number as it is
HELD_OUT = (("end", "mul"), ("lt", "mod"), ("div", "set"))
FUNCTION_NAMES = ("transform", "apply_rules", "remap", "adjust", "convert", "rewrite", "change_all", "process")
OUTPUTS = {"function": ("list", "sum"), "stdin": ("line", "lines", "sum")}
VALUE_RANGE = (0, 99)
DIFFICULTY = {2: "easy", 3: "easy", 4: "medium", 5: "medium", 6: "hard", 7: "hard", 8: "hard"}


@dataclass(frozen=True)
class Rule:
    cond: str
    c: int
    act: str
    a: int

    def matches(self, x: int) -> bool:
        if self.cond == "div":
            return x % self.c == 0
        if self.cond == "gt":
            return x > self.c
        if self.cond == "lt":
            return x < self.c
        return x % 10 == self.c


def apply_action(act: str, a: int, x: int) -> int:
    if act == KEEP:
        return x
    ops = {"add": lambda: x + a, "sub": lambda: x - a, "mul": lambda: x * a, "fdiv": lambda: x // a,
           "mod": lambda: x % a, "set": lambda: a}
    return ops[act]()


@dataclass(frozen=True)
class Spec:
    kind: str  # function | stdin
    rules: tuple[Rule, ...]
    default: tuple[str, int]  # (action kind or KEEP, parameter)
    output: str  # function: list | sum; stdin: line | lines | sum
    fn_name: str = ""

    def key(self) -> str:
        return json.dumps([self.kind, [list(vars(r).values()) for r in self.rules], self.default, self.output,
                           self.fn_name])

    def change(self, x: int) -> int:
        for r in self.rules:
            if r.matches(x):
                return apply_action(r.act, r.a, x)
        return apply_action(self.default[0], self.default[1], x)

    def answer(self, nums: list[int]):
        out = [self.change(x) for x in nums]
        return sum(out) if self.output == "sum" else out

    def unseen_pair(self) -> bool:
        return any((r.cond, r.act) in HELD_OUT for r in self.rules)


# ---------------------------------------------------------------------------------------------------------
# Statements


def _rule_text(r: Rule) -> str:
    return f"if {CONDITIONS[r.cond][0].format(c=r.c)}, {ACTIONS[r.act][0].format(c=r.a)}"


def _default_text(default: tuple[str, int]) -> str:
    if default[0] == KEEP:
        return "otherwise, keep it as it is"
    return "otherwise, " + ACTIONS[default[0]][0].format(c=default[1])


def statement(spec: Spec) -> str:
    rules = "\n".join(f"- rule {i}: {_rule_text(r)};" for i, r in enumerate(spec.rules, 1))
    rules += f"\n- {_default_text(spec.default)}."
    if spec.kind == "function":
        head = ("You are given a list of integers nums. Change every number by the first of these rules that "
                "applies to it:\n")
        tail = ("Return the changed numbers, in their original order." if spec.output == "list"
                else "Return the sum of the changed numbers.")
        return head + rules + "\n" + tail
    head = "You are given n integers. Change every number by the first of these rules that applies to it:\n"
    tail = {"line": "Print the changed numbers on one line, separated by spaces.",
            "lines": "Print each changed number on its own line.",
            "sum": "Print the sum of the changed numbers."}[spec.output]
    return (head + rules + "\nInput: the first line holds n, the second line holds the n integers.\nOutput: "
            + tail)


def starter_code(spec: Spec) -> str:
    if spec.kind != "function":
        return ""
    ret = "List[int]" if spec.output == "list" else "int"
    return f"class Solution:\n    def {spec.fn_name}(self, nums: List[int]) -> {ret}:\n        "


# ---------------------------------------------------------------------------------------------------------
# Reference solutions with fork / lock spans


class _Code:
    """Appends code fragments and remembers the character spans of the fork and lock ones."""

    def __init__(self, prefix: str = "```python\n"):
        self.text, self.spans = prefix, []

    def add(self, s: str, kind: str | None = None) -> _Code:
        if kind and s:
            self.spans.append([len(self.text), len(self.text) + len(s), kind])
        self.text += s
        return self

    def cond(self, r: Rule, v: str) -> _Code:
        code = CONDITIONS[r.cond][1]
        left, right = code.split("{c}")
        return self.add(left.format(v=v), "lock").add(str(r.c), "lock").add(right.format(v=v), "lock" if right else None)

    def action(self, act: str, a: int, v: str) -> _Code:
        if act == KEEP:
            return self.add(v, "lock")
        code = ACTIONS[act][1]
        if code == "{c}":
            return self.add(str(a), "lock")
        left = code.split("{c}")[0]
        return self.add(left.format(v=v), "lock").add(str(a), "lock")


STYLES = {"function": ("loop", "helper"), "stdin": ("script", "main")}
VAR_NAMES = ("x", "num", "v", "a")
ACC_NAMES = ("result", "res", "out", "ans")


def reference(spec: Spec, style: str, v: str = "x", acc: str = "result") -> dict:
    """One correct response (fenced, as a model writes it) and its fork/lock character spans."""
    c = _Code()
    helper = style in ("helper", "main")
    summing = spec.output == "sum"

    def branches(indent: str, emit) -> None:
        for i, r in enumerate(spec.rules):
            kw = "if " if (i == 0 or helper) else "elif "
            c.add(indent + "# rule ").add(str(i + 1), "lock").add("\n")
            c.add(indent + kw).cond(r, v).add(":\n" + indent + "    ")
            emit(lambda r=r: c.action(r.act, r.a, v))
            c.add("\n")
        if helper:
            c.add(indent)
        else:
            c.add(indent + "else:\n" + indent + "    ")
        emit(lambda: c.action(*spec.default, v))
        c.add("\n")

    def ret_emit(act):
        c.add("return ")
        act()

    if spec.kind == "function":
        ret = "List[int]" if spec.output == "list" else "int"
        c.add("class Solution:\n    def ").add(spec.fn_name, "lock").add(f"(self, nums: List[int]) -> {ret}:\n")
        if style == "loop":
            c.add("        ").add(acc, "fork").add(" = 0\n" if summing else " = []\n")
            c.add("        for ").add(v, "fork").add(" in nums:\n")

            def emit(act):
                c.add(f"{acc} += " if summing else f"{acc}.append(", "lock")
                act()
                c.add("" if summing else ")")

            branches("            ", emit)
            c.add(f"        return {acc}\n")
        else:
            c.add("        def ", "fork").add("change(").add(v, "fork").add("):\n")
            branches("            ", ret_emit)
            call = f"sum(change({v}) for {v} in nums)" if summing else f"[change({v}) for {v} in nums]"
            c.add("        return ").add(call, "lock").add("\n")
    else:
        printer = {"line": f'print(" ".join(map(str, {acc})))', "lines": f'print("\\n".join(map(str, {acc})))',
                   "sum": f"print(sum({acc}))"}[spec.output]
        if style == "script":
            c.add("n = int(input())\n", "fork").add("nums = list(map(int, input().split()))\n")
            c.add(acc, "fork").add(" = []\nfor ").add(v, "fork").add(" in nums:\n")

            def emit(act):
                c.add(f"{acc}.append(", "lock")
                act()
                c.add(")")

            branches("    ", emit)
            c.add(printer, "lock").add("\n")
        else:
            c.add("import sys\n\ndef ", "fork").add("change(").add(v, "fork").add("):\n")
            branches("    ", ret_emit)
            c.add("\ndef main():\n    data = sys.stdin.read().split()\n    n = int(data[0])\n")
            c.add("    nums = [int(t) for t in data[1:n + 1]]\n    ")
            c.add(acc, "fork").add(f" = [change({v}) for {v} in nums]\n    ").add(printer, "lock").add("\n\nmain()\n")
    c.add("```")
    return {"style": style, "var": v, "acc": acc, "response": c.text, "spans": c.spans}


# ---------------------------------------------------------------------------------------------------------
# Random problems and their tests


def _rand_rule(rng: random.Random, allow: set | None) -> Rule:
    while True:
        cond, act = rng.choice(list(CONDITIONS)), rng.choice(list(ACTIONS))
        if allow is not None and (cond, act) not in allow:
            continue
        return Rule(cond, rng.randint(*CONDITIONS[cond][2]), act, rng.randint(*ACTIONS[act][2]))


def witnesses(spec: Spec) -> list[int] | None:
    """One input value per rule that reaches that rule first, plus one for the default; None if any is dead."""
    values = list(range(VALUE_RANGE[0], VALUE_RANGE[1] + 1))
    out = []
    for i in range(len(spec.rules) + 1):
        hits = [x for x in values if all(not r.matches(x) for r in spec.rules[:i])
                and (i == len(spec.rules) or spec.rules[i].matches(x))]
        if not hits:
            return None
        out.append(hits[len(hits) // 2])
    return out


def random_spec(rng: random.Random, kind: str | None = None, n_rules: int | None = None,
                allow: set | None = None) -> Spec:
    while True:
        k = kind or rng.choice(("function", "stdin"))
        n = n_rules or rng.randint(2, 8)
        rules = tuple(_rand_rule(rng, allow) for _ in range(n))
        if len({(r.cond, r.c) for r in rules}) < n:
            continue  # the same condition twice: the second would be dead
        default = (KEEP, 0)
        if rng.random() >= 0.5:
            other = _rand_rule(rng, None)
            default = (other.act, other.a)
        spec = Spec(k, rules, default, rng.choice(OUTPUTS[k]), rng.choice(FUNCTION_NAMES) if k == "function" else "")
        if witnesses(spec) is not None:
            return spec


def tests_for(spec: Spec, rng: random.Random, count: int = 5) -> list[dict]:
    """Hidden tests: the first holds a witness of every rule and the default; boundaries; random lists."""
    wit = witnesses(spec)
    boundary = sorted({b for r in spec.rules if r.cond in ("gt", "lt") for b in (r.c - 1, r.c, r.c + 1)
                       if VALUE_RANGE[0] <= b <= VALUE_RANGE[1]})
    lists = [rng.sample(wit, len(wit))]
    if boundary:
        lists.append(rng.sample(boundary, len(boundary)))
    while len(lists) < count:
        lists.append([rng.randint(*VALUE_RANGE) for _ in range(rng.randint(4, 9))])
    tests = []
    for nums in lists:
        if spec.kind == "function":
            tests.append({"input": json.dumps(nums), "output": json.dumps(spec.answer(nums)), "testtype": "functional"})
        else:
            ans = spec.answer(nums)
            out = {"line": " ".join(map(str, ans)) if isinstance(ans, list) else "",
                   "lines": "\n".join(map(str, ans)) if isinstance(ans, list) else "", "sum": str(ans)}[spec.output]
            tests.append({"input": f"{len(nums)}\n{' '.join(map(str, nums))}\n", "output": out + "\n",
                          "testtype": "stdin"})
    return tests


def problem_record(spec: Spec, task_id: str, rng: random.Random) -> dict:
    """A LiveCodeBench code_generation_lite row (so prompts, sampling and grading treat it like the real one),
    plus the reference solutions with their fork/lock spans."""
    refs = [reference(spec, style, v, acc) for style in STYLES[spec.kind]
            for v, acc in [(rng.choice(VAR_NAMES), rng.choice(ACC_NAMES))]]
    return {
        "question_id": task_id,
        "question_title": task_id,
        "question_content": statement(spec),
        "starter_code": starter_code(spec),
        "difficulty": DIFFICULTY[len(spec.rules)],
        "platform": "testbed",
        "contest_date": None,
        "public_test_cases": json.dumps(tests_for(spec, rng)),
        "private_test_cases": "",
        "metadata": json.dumps({"func_name": spec.fn_name} if spec.kind == "function" else {}),
        "testbed": {"rules": len(spec.rules), "kind": spec.kind, "output": spec.output,
                    "unseen_pair": spec.unseen_pair(), "key": spec.key(), "references": refs},
    }


def make_splits(seed: int, sizes: dict[str, int]) -> dict[str, list[tuple[Spec, dict]]]:
    """Disjoint splits, deterministic for a seed. `pretrain` excludes HELD_OUT pairs; `ssd`, `dev` and `test`
    are drawn from the full family, so they hold combinations pretraining never saw."""
    rng = random.Random(seed)
    seen: set[str] = set()
    allowed = {(c, a) for c in CONDITIONS for a in ACTIONS} - set(HELD_OUT)
    out = {}
    for name in ("test", "dev", "ssd", "pretrain"):  # evaluation splits first: they claim their keys
        items = []
        while len(items) < sizes.get(name, 0):
            spec = random_spec(rng, allow=allowed if name == "pretrain" else None)
            if spec.key() in seen:
                continue
            seen.add(spec.key())
            items.append((spec, problem_record(spec, f"{name}-{len(items):05d}", rng)))
        out[name] = items
    return out


def prior_baselines(records: list[dict]) -> dict[str, str]:
    """Programs that know the family but not the problem: what a prior alone scores (should be ~0)."""
    out = {}
    for rec in records:
        fn = json.loads(rec["metadata"]).get("func_name")
        if fn:
            out[rec["question_id"]] = {
                "identity": f"```python\nclass Solution:\n    def {fn}(self, nums):\n        return nums\n```",
                "constant": f"```python\nclass Solution:\n    def {fn}(self, nums):\n        return 0\n```",
            }
        else:
            out[rec["question_id"]] = {
                "identity": "```python\nn = int(input())\nprint(input())\n```",
                "constant": "```python\nprint(0)\n```",
            }
    return out


# ---------------------------------------------------------------------------------------------------------
# Why an output failed (greedy failure kinds: the degenerations SSD is meant to repair)

_BRANCH = re.compile(r"^\s*(?:if|elif)\s+(.+?):\s*$", re.MULTILINE)
FAILURE_KINDS = ("passed", "truncated", "loop", "skip", "no_code", "wrong_detail")


def failure_kind(record: dict, output: str, finish_reason: str, verdict: str) -> str:
    """passed; truncated (hit the token cap); no_code; loop (a rule written twice, or more rules than stated);
    skip (fewer rules than stated); wrong_detail (the right number of distinct rules, something else wrong)."""
    if verdict == "passed":
        return "passed"
    if finish_reason == "length":
        return "truncated"
    code = extract_code(output)
    if code is None:
        return "no_code"
    branches = [b.strip() for b in _BRANCH.findall(code) if "__name__" not in b]
    stated = record["testbed"]["rules"]
    if len(branches) > stated or len(set(branches)) < len(branches):
        return "loop"
    if len(branches) < stated:
        return "skip"
    return "wrong_detail"
