"""The recipes in configs/ validate, carry the paper's settings, and every command the docs show is one the
code accepts (parsed by `ssd`'s own parser, its config file and key=value overrides validated)."""

import re
import shlex
from pathlib import Path

import pytest
from conftest import ssd

from simplesd.cli import COMMANDS, command_module, parse_args
from simplesd.commands import check_sections, sections_of
from simplesd.config import load_config

# each command's config sections, as its stage declares them (`config.reads`)
SECTIONS = {c: sections_of(command_module(c)) for c in COMMANDS if sections_of(command_module(c))}

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p for p in (ROOT / "configs").glob("*.yaml"))
LAUNCH_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_there_is_a_recipe_per_paper_model():
    assert {p.stem for p in RECIPES} == {"qwen3-4b-instruct-2507", "qwen3-4b-thinking-2507",
                                         "llama-3.1-8b-instruct", "qwen3-30b-a3b-instruct-2507"}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_has_the_papers_settings(recipe):
    r = ssd("config", "show", "--config", recipe, check=True)
    cfg = load_config(recipe)
    assert r.stdout.startswith("model:") and cfg.model.name_or_path in r.stdout
    s, f, t, e = cfg.sample, cfg.filter, cfg.train, cfg.eval
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.n, s.max_new_tokens) == (1.5, 20, 0.8, 0.0, 1, 65536)
    assert (f.drop_empty, f.drop_shortest_fraction) == (True, 0.1)
    assert (t.learning_rate, t.lr_scheduler, t.optimizer, t.effective_batch_size) == (5e-6, "cosine", "adamw_torch", 32)
    assert t.max_seq_length >= s.max_new_tokens  # no sample loses its end-of-turn token to truncation
    assert t.gradient_checkpointing and t.use_liger_kernel  # 64K-token sequences (docs/scale.md)
    assert (e.benchmark, e.start_month, e.end_month) == ("livecodebench", "2025-02", "2025-05")
    assert s.backend == "vllm" and s.data_parallel_size * s.tensor_parallel_size == 8
    r = ssd("estimate", "--config", recipe, "--prompts-count", "10000", "--mean-sample-tokens", "4000",
            "--gpus", "16" if "30b" in recipe.stem else "8", check=True)
    assert "does not fit" not in r.stdout  # the hardware the header names is enough


def _commands(text: str):
    """Shell commands in fenced bash blocks and in `# ` comment headers: continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    if not blocks and text.startswith("#"):  # a recipe's header
        blocks = ["\n".join(line[2:] for line in text.splitlines() if line.startswith("#   "))]
    for block in blocks:
        block = re.sub(r"<<'PY'.*?\nPY\n", "\n", block, flags=re.S)
        for cmd in re.sub(r"\\\n\s*", " ", block).splitlines():
            cmd = cmd.split(" # ")[0].split("  #")[0].strip()
            if cmd.startswith(("ssd ", "accelerate launch", "torchrun")):
                yield cmd


def _ssd_args(cmd: str) -> list[str] | None:
    words = shlex.split(cmd.replace("$", ""))
    if words[0] == "ssd":
        return words[1:]
    if "simplesd.cli" in words:
        head = words[: words.index("simplesd.cli")]
        if "--config_file" in head:
            assert (ROOT / head[head.index("--config_file") + 1]).is_file(), cmd
        return words[words.index("simplesd.cli") + 1 :]
    return None


ALL = [(doc.relative_to(ROOT).as_posix(), c) for doc in DOCS + RECIPES + LAUNCH_CONFIGS for c in _commands(doc.read_text())]


def test_the_docs_show_commands():
    shown = {d for d, _ in ALL}
    # every accelerate config's header shows a whole `train` command (with its required --data)
    assert {p.relative_to(ROOT).as_posix() for p in LAUNCH_CONFIGS} <= shown
    assert {"docs/reproduce.md", "docs/your-model.md", "docs/scale.md", "README.md"} <= shown
    assert len(ALL) >= 40


@pytest.mark.parametrize("doc, cmd", ALL, ids=[f"{d}:{i}" for i, (d, _) in enumerate(ALL)])
def test_documented_command_is_accepted(doc, cmd, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = _ssd_args(cmd)
    if args is None:
        pytest.skip("not an ssd command")
    try:
        ns = parse_args(args)
    except SystemExit:
        pytest.fail(f"{doc}: `{cmd}` is rejected by ssd's parser")
    overrides = getattr(ns, "overrides", None)
    if overrides is None or ns.command not in SECTIONS:
        return
    config = getattr(ns, "config", None)
    if config and not Path(config).is_file():
        made = re.findall(r"^cp \S+ (\S+)$", (ROOT / doc).read_text(), re.M)  # a file the doc has the user write
        assert not config.startswith("configs/") or config in made, f"{doc}: {config} does not exist"
        config = None
    load_config(config, overrides)  # raises on an unknown key or a wrong type
    for o in overrides:
        assert o.split("=", 1)[0].split(".")[0] in SECTIONS[ns.command], f"{doc}: `{o}` is not read by ssd {ns.command}"


def _helps():
    """(command, its --help text) for ssd and every subcommand, from the parser itself."""
    import argparse

    from simplesd.cli import build_parser

    def walk(parser, name):
        yield name, parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    yield from walk(p, f"{name} {sub}")

    return list(walk(build_parser(), "ssd"))


def test_help_texts_are_what_the_code_does():
    helps = dict(_helps())
    assert len(helps) >= 16
    for command, text in helps.items():
        assert "%%" not in text, command  # a literal "%%" (argparse formats help=, not description=)
    assert "95 % bootstrap CI" in " ".join(helps["ssd demo"].split())
    # samples have per-sample seeds (not per batch)
    assert "(this seed, prompt id, sample index)" in " ".join(helps["ssd sample"].split())
    assert "every batch's seed" not in helps["ssd sample"]


@pytest.mark.parametrize("command", sorted(SECTIONS))
def test_the_override_example_in_each_help_is_accepted_by_that_command(command):
    text = " ".join(dict(_helps())[f"ssd {command}"].split())
    example = re.search(r"config overrides, e\.g\. (\S+)", text).group(1)
    required = {"sample": ["--out", "x"], "decontaminate": ["--against", "humaneval:x", "--out", "x"],
                "filter": ["--samples", "x", "--out", "x"], "train": ["--data", "x", "--out", "x"],
                "sweep": ["--out", "x"], "check": ["--benchmark", "humaneval", "--problems", "x", "--solutions", "x",
                                                   "--out", "x"],
                "evaluate": ["--model", "m", "--benchmark", "humaneval", "--problems", "x", "--out", "x"]}
    ns = parse_args([command, *required.get(command, []), example])
    check_sections(ns, command, SECTIONS[command])  # the command reads that key
    load_config(None, ns.overrides)  # and the value is valid


def test_version():
    from simplesd import __version__

    r = ssd("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"ssd (simplesd) {__version__}, Python ")
    import importlib.metadata

    assert importlib.metadata.version("simplesd") == __version__  # pyproject and the package agree
