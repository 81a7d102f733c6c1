"""Progress where it is written: a redrawing bar in a terminal, a line per tenth of the work in a log file."""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

from conftest import ssd

from simplesd.progress import Lines


def test_lines_are_one_per_tenth_and_the_last():
    out = io.StringIO()
    bar = Lines(200, "grade", "program", interval=0, stream=out)
    for _ in range(200):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0].startswith("grade: 20/200 programs (10%), ") and " left" in lines[0]
    assert lines[-1].startswith("grade: 200/200 programs (100%), ")
    out = io.StringIO()  # resumed work starts where it was; a stop before the end says where
    bar = Lines(100, "sample", "prompt", initial=40, interval=0, stream=out)
    bar.set_postfix(tok_s=512)
    bar.update(25)
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and "65/100 prompts (65%)" in out.getvalue()
    assert "tok_s 512" in out.getvalue()
    out = io.StringIO()  # work done in seconds: its last line only
    bar = Lines(50, "grade", "program", stream=out)
    for _ in range(50):
        bar.update(1)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]] and "50/50 programs (100%)" in out.getvalue()
    out = io.StringIO()
    Lines(10, "x", "item", enabled=False, stream=out).update(10)  # --no-progress
    assert out.getvalue() == ""


def _sample_args(tiny_model, problems_file, out):
    return ["sample", "--model", tiny_model, "--prompts", problems_file, "sample.max_new_tokens=8",
            "sample.shard_size=3", "--out", out]


def test_a_log_file_gets_lines_and_a_terminal_gets_a_bar(tmp_path, tiny_model, problems_file):
    r = ssd(*_sample_args(tiny_model, problems_file, tmp_path / "log"), env={})  # stdout and stderr are pipes
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout + r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("sample: ")]
    assert progress == [progress[-1]] and progress[-1].startswith("sample: 12/12 prompts (100%)")  # (seconds of work)

    leader, follower = pty.openpty()  # a terminal (of 120 columns): tqdm redraws its line
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "simplesd.cli", *map(str, _sample_args(tiny_model, problems_file,
                          tmp_path / "tty"))], stdout=follower, stderr=follower, env=dict(os.environ))
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait(timeout=300) == 0
    text = b"".join(chunks).decode(errors="replace")
    redraws = [part for part in text.replace("\r\n", "\n").split("\r") if part.startswith("sample:")]
    assert len(redraws) >= 2 and "sample: 100%" in text and "12/12" in redraws[-1]
    assert "Loading weights" in text  # the libraries' bars too
