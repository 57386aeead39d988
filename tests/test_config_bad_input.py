"""Hostile and broken configs (issue 12, items 9 and 10): each is refused with one clear
ConfigError that names the file and line, before `replicator run` creates a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import replicator
from replicator.config import parse_override, to_container
from replicator.errors import ConfigError

from .conftest import run_cli


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 342 bytes that expand to 9**9 strings."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


# name -> (file bytes, what the one-line error must say)
BAD_CONFIGS: dict[str, tuple[bytes, str]] = {
    "laughs": (billion_laughs().encode(), r"laughs\.yaml:1: .*aliases"),
    "alias_growth": (
        (
            b"a: &a [1,2,3,4,5,6,7,8,9,10]\n"
            b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            b"d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        ),
        r"alias_growth\.yaml:\d+: its aliases expand to 12,330 more values",
    ),
    "deep": (
        ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        r"deep\.yaml:1: values are nested more than 32 levels deep",
    ),
    "deep_map": (
        ("a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n").encode(),
        r"deep_map\.yaml:1: values are nested more than 32 levels deep",
    ),
    "alias_deep": (
        (
            "a0: &a0 {x: 1}\n" + "".join(f"a{i}: &a{i} {{x: *a{i - 1}}}\n" for i in range(1, 40))
        ).encode(),
        r"alias_deep\.yaml:\d+: aliases nest values more than 32 levels deep",
    ),
    "recursive": (b"a: &a [1, *a]\n", r"recursive\.yaml:1: a recursive alias"),
    # the same bomb with interpolations: 16 levels (272 bytes) took 14 s, 20 levels over a minute
    "interpolations": (
        (
            "a0: xxxxxxxx\n" + "".join(f"a{i}: ${{a{i - 1}}}${{a{i - 1}}}\n" for i in range(1, 21))
        ).encode(),
        r"Config key 'a13' in interpolations\.yaml:14: its interpolations expand to more than "
        r"10,000 values",
    ),
    "digits": (
        b"lr: " + b"1" * 100_000 + b"\n",
        r"digits\.yaml:1: the number '1+\.\.\.' has 100,000 digits",
    ),
    "hex_digits": (b"lr: 0x" + b"f" * 5_000 + b"\n", r"hex_digits\.yaml:1: the number"),
    "inf": (
        b"optim:\n  lr: .inf\n",
        r"Config key 'optim\.lr' in inf\.yaml:2 must be a finite number, got inf\. .*use null",
    ),
    "nan_in_list": (
        b"a: 1\nsizes: [1, .nan]\n",
        r"Config key 'sizes\[1\]' in nan_in_list\.yaml:2 must be a finite number, got nan",
    ),
    "not_utf8": (
        b"a: 1\nname: caf\xe9\n",
        r"Config file not_utf8\.yaml:2 is not UTF-8 text \(byte 0xe9\); save it as UTF-8",
    ),
    "duplicate": (
        b"optim:\n  lr: 0.1\n  name: adam\n  lr: 0.2\n",
        r"duplicate\.yaml:4: key 'lr' is defined twice, on lines 2 and 4; keep one",
    ),
    "control_char": (b"a: 1\nb: \x01\n", r"control_char\.yaml:2: character #x0001 is not allowed"),
    "too_large": (
        b"a: [" + b"1, " * (1024 * 1024) + b"1]\n",
        r"too_large\.yaml is larger than 2 MiB",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_load_config_refuses_hostile_and_broken_files(tmp_path: Path, name: str) -> None:
    content, message = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        replicator.load_config(path)
    assert "\n" not in str(info.value)


def test_a_bad_base_file_is_named_not_the_child(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("a: 1\nb: 2\na: 3\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nc: 1\n")
    with pytest.raises(ConfigError, match=r"base\.yaml:3: key 'a' is defined twice"):
        replicator.load_config(tmp_path / "child.yaml")


def test_legitimate_aliases_merge_keys_and_strings_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "defaults: &defaults {lr: 0.1, width: 8}\n"
        "small:\n  <<: *defaults\n  width: 4\n"  # a merge key overridden: not a duplicate
        "large:\n  <<: *defaults\n  width: 64\n"
        "layers: &layers [1, 2, 3]\n"
        "again: *layers\n"
        "label: '.inf'\n"
        "big: 123456789012345678901234567890\n"
        "nested: " + "{a: " * 30 + "1" + "}" * 30 + "\n"
    )
    cfg = replicator.load_config(path)
    assert cfg.small.width == 4 and cfg.small.lr == 0.1 and cfg.large.width == 64
    assert list(cfg.again) == [1, 2, 3]
    assert cfg.label == ".inf"
    assert cfg.big == 123456789012345678901234567890


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+x=&a [*a]", r"Override '\+x=&a \[\*a\]': a recursive alias"),
        ("+x=.nan", r"Override '\+x=\.nan': the value must be a finite number, got \.nan"),
        ("+x=[1, -.inf]", r"the value must be a finite number, got \[1, -\.inf\]"),
        ("+x=" + "1" * 100_000, r"Override '\+x=1+\.\.\.': the number '1+\.\.\.' has 100,000"),
        ("+x=" + "[" * 5000, r"values are nested more than 32 levels deep"),
        ("+x=[1, 2", r"the value is not valid YAML \(expected ',' or '\]'"),
        ("+x=a: 1\na: 2", r"key 'a' is defined twice, on lines 1 and 2"),
    ],
)
def test_override_values_are_refused_clearly(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_override(override)
    assert len(str(info.value)) < 400


def test_non_finite_values_in_python_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"Config key 'optim\.lr' must be a finite number"):
        to_container({"optim": {"lr": float("inf")}})
    with pytest.raises(ConfigError, match=r"Config key 'clip' must be a finite number, got nan"):
        to_container(argparse.Namespace(clip=float("nan")))


# ------------------------------------------------------------------- through `replicator run`
CLI_CASES = [
    "laughs",
    "interpolations",
    "deep",
    "recursive",
    "digits",
    "inf",
    "not_utf8",
    "duplicate",
]


def assert_refused_before_the_run(proc: object, repo: Path, message: str) -> None:
    import re
    import subprocess

    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in proc.stderr and "bug in replicator" not in proc.stderr
    runs = repo / ".replicator" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run directory was left behind"


@pytest.mark.parametrize("name", CLI_CASES)
def test_run_refuses_a_bad_config_with_one_line_and_no_run(repo: Path, name: str) -> None:
    content, message = BAD_CONFIGS[name]
    (repo / f"{name}.yaml").write_bytes(content)
    proc = run_cli("run", "-c", f"{name}.yaml", "--", "python", "-c", "pass", cwd=repo, timeout=60)
    assert_refused_before_the_run(proc, repo, message)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+x=.nan", r"Override '\+x=\.nan': the value must be a finite number"),
        ("+x=&a [*a]", r"a recursive alias"),
        ("+x=" + "1" * 100_000, r"has 100,000 digits"),
    ],
)
def test_run_refuses_bad_set_values_with_no_phantom_run(
    repo: Path, override: str, message: str
) -> None:
    proc = run_cli("run", "--set", override, "--", "python", "-c", "pass", cwd=repo, timeout=60)
    assert_refused_before_the_run(proc, repo, message)
