"""LiveCodeBench problems built here in the exact published code_generation_lite format (public tests as a JSON
string, private tests as base64 of zlib of a pickled JSON string, metadata as a JSON string), with correct and
wrong solutions. Used by the tests and by benchmarks/grader_speed.py."""

from __future__ import annotations

import base64
import json
import pickle
import random
import zlib


def encode_private(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def row(qid: str, content: str, tests: list[dict], *, starter: str = "", func: str = "", difficulty: str = "easy",
        date: str = "2025-03-01T00:00:00", public: int = 1) -> dict:
    return {
        "question_title": qid, "question_content": content, "platform": "leetcode" if func else "atcoder",
        "question_id": qid, "contest_id": "c1", "contest_date": date, "starter_code": starter,
        "difficulty": difficulty, "public_test_cases": json.dumps(tests[:public]),
        "private_test_cases": encode_private(tests[public:]),
        "metadata": json.dumps({"func_name": func} if func else {}),
    }


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


def _stdin_sum(rng, k):
    tests = []
    for _ in range(k):
        xs = [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 30))]
        tests.append({"input": f"{len(xs)}\n{' '.join(map(str, xs))}\n", "output": f"{sum(xs)}\n", "testtype": "stdin"})
    good = "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs))"
    wrong = "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs) + (1 if n > 5 else 0))"
    return tests, good, wrong


def _stdin_sort(rng, k):
    tests = []
    for _ in range(k):
        xs = [rng.randint(0, 99) for _ in range(rng.randint(1, 20))]
        tests.append({"input": " ".join(map(str, xs)) + "\n", "output": " ".join(map(str, sorted(xs))) + "\n",
                      "testtype": "stdin"})
    good = "import sys\ndef main():\n    xs = sorted(map(int, sys.stdin.read().split()))\n    print(*xs)\nif __name__ == '__main__':\n    main()"
    wrong = "import sys\nxs = sorted(map(int, sys.stdin.read().split()), reverse=True)\nprint(*xs)"
    return tests, good, wrong


def _stdin_mean(rng, k):
    tests = []
    for _ in range(k):
        xs = [rng.randint(1, 100) for _ in range(rng.choice([1, 2, 4, 5, 8, 10]))]  # terminating decimal means
        tests.append({"input": " ".join(map(str, xs)) + "\n", "output": f"{sum(xs) / len(xs):.6f}\n", "testtype": "stdin"})
    good = "xs = list(map(int, input().split()))\nprint(sum(xs) / len(xs))"  # Decimal equality needs the exact value
    wrong = "xs = list(map(int, input().split()))\nprint(sum(xs) // len(xs))"
    return tests, good, wrong


def _call_two_sum(rng, k):
    tests = []
    for _ in range(k):
        xs = rng.sample(range(-50, 50), rng.randint(2, 12))
        i, j = sorted(rng.sample(range(len(xs)), 2))
        target = xs[i] + xs[j]
        seen, answer = {}, None  # the first pair found scanning left to right (the target may have several)
        for b, x in enumerate(xs):
            if target - x in seen:
                answer = [seen[target - x], b]
                break
            seen[x] = b
        tests.append({"input": f"{json.dumps(xs)}\n{target}", "output": json.dumps(answer), "testtype": "functional"})
    starter = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        "
    good = ("class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
            "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
            "                return (seen[target - x], i)\n            seen[x] = i\n")
    wrong = ("class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
             "        return [0, len(nums) - 1]\n")
    return tests, good, wrong, starter, "twoSum"


def _call_max_window(rng, k):
    tests = []
    for _ in range(k):
        xs = [rng.randint(-20, 20) for _ in range(rng.randint(3, 25))]
        w = rng.randint(1, len(xs))
        best = max(sum(xs[i:i + w]) for i in range(len(xs) - w + 1))
        tests.append({"input": f"{json.dumps(xs)}\n{w}", "output": json.dumps(best), "testtype": "functional"})
    starter = "class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n        "
    good = ("class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n"
            "        s = sum(nums[:k]); best = s\n        for i in range(k, len(nums)):\n"
            "            s += nums[i] - nums[i - k]; best = max(best, s)\n        return best\n")
    wrong = ("class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n"
             "        return max(sum(nums[i:i + k]) for i in range(len(nums) - k))\n")
    return tests, good, wrong, starter, "maxWindow"


def build(n_problems: int = 10, tests_per_problem: int = 12, seed: int = 0):
    """(rows, solutions): problems in the published format and, per problem, responses with known verdicts:
    [(response, expected_verdict)]."""
    rng = random.Random(seed)
    makers = [_stdin_sum, _stdin_sort, _stdin_mean, _call_two_sum, _call_max_window]
    diffs = ["easy", "medium", "hard"]
    rows, solutions = [], {}
    for i in range(n_problems):
        made = makers[i % len(makers)](rng, tests_per_problem)
        qid = f"lcb{i:03d}"
        date = f"2025-{(i % 6) + 1:02d}-15T00:00:00"
        if len(made) == 3:
            tests, good, wrong = made
            rows.append(row(qid, f"Problem {i} (stdin).", tests, difficulty=diffs[i % 3], date=date))
        else:
            tests, good, wrong, starter, func = made
            rows.append(row(qid, f"Problem {i} (function).", tests, starter=starter, func=func,
                            difficulty=diffs[i % 3], date=date))
        timeout_prog = "while True:\n    pass"
        crash = "raise ValueError('boom')"
        solutions[qid] = [(fence(good), "passed"), (fence(wrong), "failed"), (fence(crash), "runtime_error"),
                          (fence(timeout_prog), "timeout"), ("I cannot solve this.", "no_code")]
    return rows, solutions
