"""Config loading: extends, overrides, validation errors with file:line, recording helpers."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import replicator
from replicator.config import config_hash, flatten, hparams_csv, parse_override
from replicator.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    write(
        tmp_path / "base.yaml",
        "# base\noptim:\n  lr: 0.001   # learning rate\n  name: adam\nmodel:\n  width: 32\n  use_bias: true\n",
    )
    write(
        tmp_path / "mlp.yaml",
        "extends: base.yaml\nmodel:\n  width: 64\nsteps: 10\nlabel: 'lr=${optim.lr}'\n",
    )
    return tmp_path


def test_extends_merges_base_and_keeps_own_values(configs: Path) -> None:
    cfg = replicator.load_config(configs / "mlp.yaml")
    assert cfg.model.width == 64
    assert cfg.model.use_bias is True
    assert cfg.optim.lr == 0.001
    assert "extends" not in cfg
    assert cfg.label == "lr=0.001"  # interpolation resolved from the base


def test_overrides_set_add_force_delete(configs: Path) -> None:
    cfg = replicator.load_config(
        configs / "mlp.yaml",
        overrides=["optim.lr=0.01", "+optim.momentum=0.9", "++model.depth=3", "~model.use_bias"],
    )
    assert cfg.optim.lr == 0.01
    assert cfg.optim.momentum == 0.9
    assert cfg.model.depth == 3
    assert "use_bias" not in cfg.model
    assert cfg.label == "lr=0.01"


def test_override_values_are_yaml(configs: Path) -> None:
    cfg = replicator.load_config(
        configs / "mlp.yaml", overrides=["+layers=[1, 2]", "optim.name=null"]
    )
    assert list(cfg.layers) == [1, 2]
    assert cfg.optim.name is None


def test_unknown_key_is_rejected_with_a_suggestion(configs: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"no key 'optim\.l'.*Did you mean 'optim\.lr'.*\+optim\.l=0\.1"
    ):
        replicator.load_config(configs / "mlp.yaml", overrides=["optim.l=0.1"])


def test_wrong_type_names_file_and_line(configs: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"Config key 'optim\.lr' in .*base\.yaml:3 must be a number, got 'fast'"
    ):
        replicator.load_config(configs / "mlp.yaml", overrides=["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"'model' in .*mlp\.yaml:2 is a section"):
        replicator.load_config(configs / "mlp.yaml", overrides=["model=3"])


def test_adding_an_existing_key_says_to_drop_the_plus(configs: Path) -> None:
    with pytest.raises(ConfigError, match=r"already exists .*Drop the '\+'"):
        replicator.load_config(configs / "mlp.yaml", overrides=["+steps=3"])


def test_yaml_syntax_error_names_file_line_column(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+:\d+: .*Fix the YAML syntax"):
        replicator.load_config(bad)


def test_missing_file_and_missing_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        replicator.load_config(tmp_path / "nope.yaml")
    child = write(tmp_path / "child.yaml", "extends: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"child\.yaml:1: extends 'missing\.yaml'"):
        replicator.load_config(child)


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "extends: b.yaml\nx: 1\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\ny: 1\n")
    with pytest.raises(ConfigError, match="cycle"):
        replicator.load_config(tmp_path / "a.yaml")


def test_non_mapping_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"list\.yaml:1: a config must be a mapping"):
        replicator.load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_bad_interpolation_names_key(tmp_path: Path) -> None:
    cfg_file = write(tmp_path / "i.yaml", "a: ${nothing.here}\n")
    with pytest.raises(ConfigError, match="Config key 'a'"):
        replicator.load_config(cfg_file)


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="has no '='"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match="not a dotted key"):
        parse_override("a..b=1")


@dataclass
class Optim:
    lr: float = 0.1


@dataclass
class Schema:
    optim: Optim = field(default_factory=Optim)
    steps: int = 1


def test_schema_validation_names_key_and_line(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "optim:\n  lr: 0.5\nsteps: 3\n")
    cfg = replicator.load_config(good, schema=Schema)
    assert cfg.optim.lr == 0.5 and cfg.steps == 3
    bad = write(tmp_path / "bad.yaml", "optim:\n  lr: 0.5\nsteps: many\n")
    with pytest.raises(ConfigError, match=r"'steps' in .*bad\.yaml:3 does not fit Schema"):
        replicator.load_config(bad, schema=Schema)


def test_flatten_hash_and_hparams() -> None:
    data = {"b": {"y": 2, "x": [1, 2]}, "a": 1, "flag": True, "none": None}
    assert flatten(data) == {"b.y": 2, "b.x": [1, 2], "a": 1, "flag": True, "none": None}
    reordered = {"a": 1, "none": None, "flag": True, "b": {"x": [1, 2], "y": 2}}
    assert config_hash(data) == config_hash(reordered)
    assert config_hash(data) != config_hash({**data, "a": 2})
    csv_text = hparams_csv(data)
    assert csv_text.splitlines() == [
        "key,value",
        "b.y,2",
        'b.x,"[1, 2]"',
        "a,1",
        "flag,true",
        "none,null",
    ]


def test_capture_args_records_namespace_and_updates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(["--lr", "0.5"])
    cfg = replicator.capture_args(args)
    assert cfg.lr == 0.5 and cfg.epochs == 3
    # inside `replicator run`, --set overrides reach the namespace the script keeps using
    monkeypatch.setenv("REPLICATOR_OVERRIDES", '["epochs=7"]')
    monkeypatch.setenv("REPLICATOR_SEED", "11")
    monkeypatch.setenv("REPLICATOR_RUN_DIR", "")  # joined only when non-empty
    cfg = replicator.capture_args(args)
    assert cfg.epochs == 3  # not joined: no run dir
