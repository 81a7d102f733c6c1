import pytest
from conftest import ssd

from simplesd.config import SSDConfig, describe, load_config
from simplesd.io import InputError


def test_defaults_are_the_papers():
    c = SSDConfig()
    assert (c.sample.temperature, c.sample.top_k, c.sample.top_p, c.sample.min_p, c.sample.n) == (1.5, 20, 0.8, 0.0, 1)
    assert c.sample.max_new_tokens == 4096
    assert c.filter.drop_empty and c.filter.drop_shortest_fraction == 0.1 and not c.filter.require_code_block
    assert (c.train.learning_rate, c.train.lr_scheduler, c.train.effective_batch_size) == (5e-6, "cosine", 32)
    assert c.train.optimizer.startswith("adamw")
    assert c.eval.temperature != c.sample.temperature  # decoded at a separately tuned temperature


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sample:\n  top_p: 0.9\n  n: 4\ntrain:\n  lora:\n    enabled: true\n    r: 8\n")
    c = load_config(p, ["sample.n=2", "train.learning_rate=1e-5", "eval.temperatures=0.2,0.6", "model.revision=1234"])
    assert c.sample.top_p == 0.9 and c.sample.n == 2
    assert c.train.lora.enabled and c.train.lora.r == 8
    assert c.train.learning_rate == 1e-5
    assert c.eval.temperatures == [0.2, 0.6]
    assert c.model.revision == "1234"  # a string field keeps the text as written
    assert load_config(None, ["prompts.max_prompts=null"]).prompts.max_prompts is None
    assert isinstance(load_config(None, ["sample.temperature=1"]).sample.temperature, float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("sample.topp=0.9", "unknown config key 'sample.topp' (did you mean 'sample.top_p'?)"),
        ("nope.x=1", "unknown config key 'nope'"),
        ("sample.top_k=abc", "config key 'sample.top_k': expected int"),
        ("sample.n=1.5", "config key 'sample.n': expected int"),
        ("filter.dedup=maybe", "config key 'filter.dedup': expected bool"),
        ("sample.top_p=0", "config key 'sample.top_p': must be in (0, 1]"),
        ("train.lora=1", "config key 'train.lora' is a section"),
        ("sample", "expected key.sub=value"),
        ("train.effective_batch_size=30", "multiple of train.per_device_batch_size"),
        ("train.report_to=tensorboard,mlflow", "config key 'train.report_to': each tracker must be one of tensorboard, wandb, trackio, none"),
        ("train.report_to=none,wandb", "none cannot be combined"),
        ("train.push_to_hub=true", "config key 'train.hub_model_id': train.push_to_hub needs the Hub repo"),
        ("train.hub_model_id=just-a-name", "config key 'train.hub_model_id': expected a Hub repo id NAMESPACE/NAME"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    overrides = [override] + (["train.per_device_batch_size=4"] if "effective" in override else [])
    with pytest.raises(InputError) as e:
        load_config(None, overrides)
    assert message in str(e.value)


def test_bad_yaml_names_file_and_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 0.1\n")
    with pytest.raises(InputError, match=r"c.yaml: unknown config key 'train.lr'"):
        load_config(p)
    p.write_text("sample:\n  n: [1, 2]\n")
    with pytest.raises(InputError, match=r"config key 'sample.n': expected int"):
        load_config(p)


def test_every_field_is_documented():
    rows = describe()
    assert len(rows) > 40
    assert all(help_text for _, _, help_text in rows)


def test_cli_config_show_and_errors(tmp_path):
    r = ssd("config", "show", "sample.top_p=0.95")
    assert r.returncode == 0 and "top_p: 0.95" in r.stdout and "learning_rate: 5.0e-06" in r.stdout
    r = ssd("config", "show", "sample.tmperature=1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["ssd: error: unknown config key 'sample.tmperature' (did you mean 'sample.temperature'?)"]
    r = ssd("config", "show", "--config", tmp_path / "missing.yaml")
    assert r.returncode == 2 and "missing.yaml: config file not found" in r.stderr


def test_control_decoding_keys_are_checked():
    for override, line in [
        ("eval.decoding=ssd", "config key 'eval.decoding': must be plain or ssd_equivalent, got 'ssd'"),
        ("eval.control_top_p=0", "config key 'eval.control_top_p': must be in (0, 1] or null, got 0.0"),
        ("sample.control_temperature=-1", "config key 'sample.control_temperature': must be > 0 or null, got -1.0"),
        ("eval.control_top_k=-2", "config key 'eval.control_top_k': must be >= 0 (0 = off) or null, got -2"),
    ]:
        r = ssd("config", "show", override)
        assert r.returncode == 2 and r.stderr.strip() == f"ssd: error: {line}", r.stderr
    r = ssd("config", "show", "eval.decoding=ssd_equivalent", "sample.temperature=0")
    assert r.returncode == 2 and "eval.control_temperature" in r.stderr and "mirrors a sampling temperature > 0" in r.stderr


def test_stage_help_lists_every_key_it_reads():
    keys = [k for k, _, _ in describe()]
    for command, sections in {"sample": ("model", "prompts", "sample"), "filter": ("filter",),
                              "train": ("model", "train"), "run": ("model", "prompts", "sample", "filter", "train")}.items():
        r = ssd(command, "--help")
        assert r.returncode == 0
        for k in keys:
            if k.split(".")[0] in sections:
                assert k in r.stdout, f"`ssd {command} --help` does not document {k}"


def test_keys_added_later_leave_old_run_directories_matching():
    """A key added after run directories recorded their config is left out of a stage's identity while at its
    default (an old directory still resumes), and counts once it is set."""
    from simplesd.config import LATER_KEYS, OUTSIDE_IDENTITY, identity, to_dict
    from simplesd.sample import sample_identity

    cfg = SSDConfig()
    cfg.prompts.decontaminate = False
    old = to_dict(cfg)
    for key in [*LATER_KEYS, *OUTSIDE_IDENTITY]:  # what a directory written before these keys recorded
        section, *rest = key.split(".")
        holder = old[section]
        for part in rest[:-1]:
            holder = holder[part]
        del holder[rest[-1]]
    assert identity(cfg) == identity(old) == old
    before = sample_identity(cfg)[0]
    cfg.prompts.system_prompt = "Be brief."
    assert sample_identity(cfg)[0] != before and sample_identity(cfg)[0]["prompts"]["system_prompt"] == "Be brief."


def test_prompt_fields_are_set_entry_by_entry_and_checked(tmp_path):
    """`prompts.fields.question=problem` sets one entry of the mapping, on the command line as in YAML; a name that is
    not one of ours is refused naming the key."""
    from simplesd.config import apply_override, validate

    cfg = SSDConfig()
    apply_override(cfg, "prompts.fields.question=problem")
    apply_override(cfg, "prompts.fields.id=uid")
    assert cfg.prompts.fields == {"question": "problem", "id": "uid"}
    path = tmp_path / "c.yaml"
    path.write_text("prompts:\n  fields: {question: problem}\n  system_prompt: Be brief.\n")
    loaded = load_config(path)
    assert loaded.prompts.fields == {"question": "problem"} and loaded.prompts.system_prompt == "Be brief."
    apply_override(cfg, "prompts.fields.title=name")
    with pytest.raises(InputError, match=r"config key 'prompts.fields.title': our field names are id, question"):
        validate(cfg)
    path.write_text("prompts:\n  fields: problem\n")
    with pytest.raises(InputError, match=r"config key 'prompts.fields': expected a mapping"):
        load_config(path)
    r = ssd("config", "show", "prompts.fields.question=problem")
    assert r.returncode == 0 and "question: problem" in r.stdout


def test_trackers_and_the_hub_are_not_part_of_what_is_trained():
    """Turning a tracker or the Hub upload on does not make a finished training "another config"."""
    from simplesd.train import train_identity

    cfg = SSDConfig()
    before = train_identity(cfg, "train.jsonl")[0]
    for override in ("train.report_to=wandb,trackio", "train.run_name=x", "train.push_to_hub=true",
                     "train.hub_model_id=alice/x", "train.hub_dataset_id=alice/y", "train.hub_private_repo=true"):
        cfg = load_config(None, [override] + (["train.hub_model_id=alice/x"] if "push" in override else []))
        assert train_identity(cfg, "train.jsonl")[0] == before, override
    assert load_config(None, ["train.report_to=tensorboard,wandb"]).train.report_to == ["tensorboard", "wandb"]
    assert load_config(None, ["train.learning_rate=1e-5"]).train.report_to == ["tensorboard"]  # TRL's users' default
