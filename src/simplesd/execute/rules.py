"""LiveCodeBench's grading rules, written out: code extraction, program preparation and output comparison.

Everything here is pure (no execution). The rules follow LiveCodeBench's `testing_util.py` as used by the
paper's evaluation (apple/ml-ssd), so verdicts match the reference:

- Code is what lcb_runner's `extract_code` takes: the lines between the last two lines that hold a fence
  (```` ``` ````), whatever else those lines hold (```` ```python3 ````, a stray fence after the program);
  fewer than two such lines is no code. `extraction="lenient"` (opt-in) takes the last well-formed fenced
  block instead (```` ```lang\\n ... ``` ```` with `lang` letters only).
- Programs may convert integers of up to 50,000 digits to and from strings (lcb_runner raises Python's
  limit of 4,300 to that).
- stdin/stdout programs: a trailing `if __name__ == '__main__':` block is unwrapped, all non-import statements
  are wrapped in one function (called once per test) behind a fixed block of star imports, stdin is replaced by
  the test's input, stdout captured. Comparison: strip the whole output, split into lines, strip each line;
  the line counts must match; each line must match exactly, or else as whitespace-separated `Decimal`s.
- call-based (LeetCode) programs: the same import block, then the code; if it contains `class Solution`, one
  `Solution()` instance serves every test; each test's input is JSON values one per line, passed as positional
  arguments; a returned tuple counts as a list; the result must equal the JSON-decoded expected output.
"""

from __future__ import annotations

import ast
import re
from decimal import Decimal, InvalidOperation

FENCE = re.compile(r"```(?:[a-zA-Z]*)\n(.*?)```", re.DOTALL)
EXTRACTIONS = ("official", "lenient")
INT_DIGITS = 50_000  # lcb_runner's sys.set_int_max_str_digits

IMPORT_BLOCK = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)
WRAPPED = "wrapped_function"


def extract_code(response: str, extraction: str = "official") -> str | None:
    """The program in a model response, or None when there is none. official: lcb_runner's rule, the lines
    between the last two lines holding a fence; lenient: the last well-formed ```lang block."""
    if extraction == "lenient":
        blocks = FENCE.findall(response)
        return blocks[-1] if blocks else None
    if extraction != "official":
        raise ValueError(f"unknown extraction rule {extraction!r} (one of {', '.join(EXTRACTIONS)})")
    lines = response.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return None
    return "\n".join(lines[fences[-2] + 1:fences[-1]])


def unwrap_main_guard(code: str) -> str:
    """Replaces a final `if __name__ == '__main__':` block by its body (the reference's `clean_if_name`)."""
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:  # unparsable code is left for the compiler to reject
        pass
    return code


def wrap_stdio_program(code: str) -> str:
    """Imports hoisted, every other statement inside `def wrapped_function():` (the reference's `make_function`)."""
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        others = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        fn = ast.FunctionDef(
            name=WRAPPED,
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=others, decorator_list=[], lineno=-1,
        )
        return IMPORT_BLOCK + "\n" + ast.unparse(imports) + "\n" + ast.unparse(fn)
    except Exception:
        return code


def prepare_stdio(code: str) -> str:
    return wrap_stdio_program(unwrap_main_guard(code))


def prepare_call_based(code: str) -> str:
    return IMPORT_BLOCK + "\n\n" + code


def stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(x) for x in line.split()]
    except (InvalidOperation, ValueError):
        return None


def stdio_equal(output: str, expected: str) -> bool:
    got, want = stripped_lines(output), stripped_lines(expected)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g == w:
            continue
        dg, dw = _decimals(g), _decimals(w)
        if dg is None or dw is None or dg != dw:
            return False
    return True


def call_equal(prediction, expected) -> bool:
    if isinstance(prediction, tuple):
        prediction = list(prediction)
    return prediction == expected


def parse_call_inputs(text: str) -> list:
    import json

    return [json.loads(line) for line in text.split("\n")]
