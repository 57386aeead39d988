"""Fuzzing the config loader and the override parser (issue 12, item 12): whatever the text,
the result is a config that can be recorded, or a ConfigError whose message names the file or
the override; never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import replicator  # noqa: E402
from replicator.config import (  # noqa: E402
    config_hash,
    dump_yaml,
    hparams_csv,
    parse_override,
    to_container,
)
from replicator.errors import ConfigError  # noqa: E402

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# pieces of YAML that exercise aliases, merge keys, tags, special floats, big numbers, nesting,
# interpolations and characters YAML refuses, put together as lines of `indent key: value`
VALUES = [
    "1", "-2", "0.5", "1e9", "1.0e+999", ".inf", "-.inf", ".nan", "0x" + "f" * 40, "1" * 1200,
    "1:2:3", "0o17", "true", "null", "~", "'s'", '"q"', "2001-12-14", "!!binary aGk=",
    "!!set {a, b}", "!!python/object:os.system", "!!str 1", "${a}", "${b.c}", "${lr}",
    "${oc.env:HOME}", "${oc.decode:'[1'}", "*x", "*y", "&x 1", "&y [1, *x]", "&x", "&y", "",
    "[*x, *x, *y]", "{a: *x, b: *y}", "[[[[1]]]]", "[", "{", "}", "#c", "\t", "\x00", "\x85",
    "\ufeff", "é", "---", "...", "%YAML 1.1",
]  # fmt: skip
KEYS = ["a: ", "b: ", "lr: ", "c: ", "<<: ", "? ", "- ", "1: ", "null: ", ".inf: ", "[a]: ", ""]
value = st.one_of(
    st.sampled_from(VALUES), st.lists(st.sampled_from(VALUES), max_size=4).map(" ".join)
)
line = st.tuples(st.sampled_from(["", "", "  ", "    ", "- "]), st.sampled_from(KEYS), value)
yaml_like = st.lists(line.map("".join), max_size=12).map("\n".join)
# valid YAML holding any JSON-like data, NaN, infinities and big numbers included
dumped = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
).map(lambda data: yaml.safe_dump({"a": data}, allow_unicode=True))


def assert_recordable(cfg: object) -> None:
    """What `replicator run` does with a loaded config must not fail."""
    data = to_container(cfg)
    json.dumps(data, allow_nan=False, default=str)
    config_hash(data)
    hparams_csv(data)
    dump_yaml(data)


def assert_clear(exc: ConfigError, *names: str) -> None:
    message = str(exc)
    assert message and any(name in message for name in names), message


def check_load(path: Path) -> None:
    """Loading ``path`` either gives a recordable config or a clear ConfigError."""
    try:
        cfg = replicator.load_config(path)
    except ConfigError as exc:
        assert_clear(exc, "fuzz.yaml", "Config key")
        return
    assert_recordable(cfg)


@FUZZ
@given(text=st.one_of(yaml_like, st.text(max_size=200)))
def test_load_config_fuzz(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check_load(path)


@FUZZ
@given(text=dumped)
def test_load_config_fuzz_data(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    check_load(path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_load_config_fuzz_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    check_load(path)


keys = st.sampled_from(["lr", "optim.lr", "optim.name", "new", "a.b.c", "optim", "", ".", "a..b"])
ops = st.sampled_from(["", "+", "++", "~", "+++", " "])
values = st.one_of(value, yaml_like, dumped, st.text(max_size=60))


@FUZZ
@given(
    overrides=st.lists(
        st.one_of(
            st.tuples(ops, keys, st.sampled_from(["=", "", "=="]), values).map("".join),
            st.text(max_size=60),
        ),
        max_size=3,
    )
)
def test_overrides_fuzz(tmp_path: Path, overrides: list[str]) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("lr: 0.1\noptim:\n  lr: 0.01\n  name: adam\nflag: true\n")
    try:
        for text in overrides:
            parse_override(text)
        cfg = replicator.load_config(base, overrides=overrides)
    except ConfigError as exc:
        assert_clear(exc, "Override", "Config key", "config has no key", "base.yaml")
        return
    assert_recordable(cfg)
