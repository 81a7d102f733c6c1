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
import base64
import pickle  # here, so that the grading worker has it loaded before it forks programs
import re
from decimal import Decimal, InvalidOperation

FENCE = re.compile(r"```(?:[a-zA-Z]*)\n(.*?)```", re.DOTALL)
EXTRACTIONS = ("official", "lenient")
INT_DIGITS = 50_000  # lcb_runner's sys.set_int_max_str_digits

IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\n"
)
IMPORT_BLOCK = IMPORTS + "sys.setrecursionlimit(50000)\n"
WRAPPED = "wrapped_function"
# the modules the block imports: the grading worker imports them once, before it forks any program (importing
# statistics, typing, datetime, string and heapq in each program cost it ~10 ms)
IMPORTED_BY_BLOCK = tuple(dict.fromkeys(line.split()[1] for line in IMPORTS.splitlines()))


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


# ---------------------------------------------------------------------------------------------------------
# Values that cross the pipe (HumanEval returns, EvalPlus inputs and outputs): a Python literal, plus what
# `repr` writes for values `ast.literal_eval` cannot read back: inf, nan, set(), frozenset(...).

_NAMES = {"inf": float("inf"), "nan": float("nan")}


def read_value(text: str):
    """The value of a literal written by `repr` (raises ValueError, SyntaxError or RecursionError when it is
    not one). Nothing is evaluated: only constants, containers, signs, complex sums and the names above."""
    def conv(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [conv(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("a ** in a dict literal")
            return {conv(k): conv(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = conv(node.operand)
            if isinstance(v, bool) or not isinstance(v, (int, float, complex)):
                raise ValueError("a sign on something that is not a number")
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            left, right = conv(node.left), conv(node.right)
            if not (isinstance(left, (int, float)) and not isinstance(left, bool) and isinstance(right, complex)):
                raise ValueError("arithmetic that is not a complex literal")
            return left + right if isinstance(node.op, ast.Add) else left - right
        if isinstance(node, ast.Name) and node.id in _NAMES:
            return _NAMES[node.id]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset")
                and not node.keywords and len(node.args) <= 1):
            items = conv(node.args[0]) if node.args else ()
            return set(items) if node.func.id == "set" else frozenset(items)
        raise ValueError(f"not a literal: {type(node).__name__}")

    return conv(ast.parse(text.strip(), mode="eval").body)


def pack_args(args: list) -> str:
    """An input's argument list as the program receives it (EvalPlus's values, users' call tests): pickled by
    simplesd from values it read as data (never a pickle from a file), so tuples, sets and complex numbers arrive
    as they are, 50x faster to read back than a literal."""
    return base64.b64encode(pickle.dumps(list(args), protocol=4)).decode("ascii")


def unpack_args(text: str) -> list:
    return pickle.loads(base64.b64decode(text))


# ---------------------------------------------------------------------------------------------------------
# EvalPlus's comparison (evalplus/eval/__init__.py `unsafe_execute`), outside the program: the output equals the
# canonical solution's, or (floats, or a task with an atol) is within atol (rtol 1e-7, numpy's allclose rule) with
# the same type and length; a few tasks have their own oracle (`EVALPLUS_ORACLES`).

DIGEST_OVER = 1 << 20  # characters: a longer output crosses the pipe as a digest of its literal (MBPP+ 255: ~1 GB)


def digest(text: str) -> str:
    """Stands for a literal too long to send: equal digests, equal literals. Never a literal itself (`#`)."""
    import hashlib

    h = hashlib.sha256()
    for i in range(0, len(text), 1 << 20):  # in pieces: the literal may be most of the program's memory
        h.update(text[i:i + (1 << 20)].encode("utf-8", "backslashreplace"))
    return f"#sha256:{h.hexdigest()}:{len(text)}"


def is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def _close(a, b, atol: float, rtol: float = 1e-7) -> bool:
    """numpy.allclose(a, b) for nested lists/tuples of numbers of the same shape (nan never close)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))) or len(a) != len(b):
            return False
        return all(_close(x, y, atol, rtol) for x, y in zip(a, b))
    if not all(isinstance(v, (int, float, complex)) for v in (a, b)):
        return False
    if a == b:  # equal infinities too
        return True
    try:
        return abs(a - b) <= atol + rtol * abs(b)
    except (OverflowError, TypeError):
        return False


def _poly(xs, x) -> float:
    import math

    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _pyramid_surface(base_edge, height) -> int:
    import math

    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 2 * base_edge * slant)


def _digit_distance(a, b) -> int:
    sa, sb = str(a), str(b)
    width = max(len(sa), len(sb))
    return sum(abs(int(x) - int(y)) for x, y in zip(sa.zfill(width), sb.zfill(width)))


# EvalPlus's special oracles, by benchmark and entry point
EVALPLUS_ORACLES = {
    ("humaneval+", "find_zero"): "poly_root",  # any root of the polynomial within atol
    ("mbpp+", "are_equivalent"): "anything",  # Mbpp/164: every output accepted
    ("mbpp+", "sum_div"): "or_zero",  # Mbpp/295
    ("mbpp+", "surface_Area"): "pyramid_surface",  # Mbpp/581: either reading of "height"
    ("mbpp+", "digit_distance_nums"): "digit_distance",  # Mbpp/558: zero-padded digits
    **{("mbpp+", n): "same_set" for n in ("similar_elements", "find_char_long", "common_in_nested_lists",
                                          "extract_singly", "larg_nnum", "intersection_array", "find_dissimilar", "Diff")},
    # outputs that are not data (re.Match): only "not None" is compared, computed inside the program
    **{("mbpp+", n): "not_none" for n in ("check_str", "text_match_three", "text_starta_endb")},
}


def values_equal(out, expected, atol: float = 0.0, oracle: str = "", args=()) -> bool:
    """EvalPlus's verdict on one input: `out` the program's output, `expected` the canonical solution's."""
    try:
        if oracle == "poly_root":
            return abs(_poly(*args, out)) <= atol
        exact = out == expected
        if oracle == "anything":
            exact = True
        elif oracle == "or_zero":
            exact = exact or out == 0
        elif oracle == "pyramid_surface":
            exact = exact or abs(out - _pyramid_surface(*args)) <= atol
        elif oracle == "digit_distance":
            exact = exact or out == _digit_distance(*args)
        elif oracle == "same_set":
            exact = set(out) == set(expected)
        exact = bool(exact)
    except Exception:  # noqa: BLE001 - an output the comparison cannot handle is a wrong answer
        return False
    if atol == 0 and is_floats(expected):
        atol = 1e-6  # EvalPlus enforces a tolerance for floats
    if exact or atol == 0:
        return exact
    return type(out) is type(expected) and _close(out, expected, atol)
