"""``replicator report`` through click and as a subprocess: exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from replicator.cli.main import main


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """The console script's entry point: (exit code, stdout, stderr), errors mapped to codes."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_markdown_to_stdout(invoke, experiment_store: Path) -> None:
    code, out, _ = invoke(
        "report", "mlp", "--metric", "test_acc", "--group-by", "model", "--format", "md"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["| model | n | test_acc (mean ± SD) | 95% CI |", "|---|---:|---:|---:|"]
    # the expected rows, from the run files on disk: completed runs only, sample SD, t-interval
    values: dict[str, list[float]] = {}
    for run in sorted((experiment_store / "runs").iterdir()):
        meta = json.loads((run / "run.json").read_text())
        if meta["status"] == "completed":
            acc = json.loads((run / "summary.json").read_text())["test_acc"]
            values.setdefault(meta["config"]["model"], []).append(acc)
    best = max(values, key=lambda m: np.mean(values[m]))
    expected = []
    for model in sorted(values):
        x = np.array(values[model])
        low, high = st.t.interval(0.95, x.size - 1, loc=x.mean(), scale=st.sem(x))
        cell = f"{x.mean():.3f} ± {x.std(ddof=1):.3f}"
        cell = f"**{cell}**" if model == best else cell
        expected.append(f"| {model} | {x.size} | {cell} | [{low:.3f}, {high:.3f}] |")
    assert lines[2:5] == expected


def test_html_default_path_and_latex_file(invoke, experiment_store: Path, tmp_path: Path) -> None:
    code, out, _ = invoke("report", "mlp", "--metric", "test_acc", "--baseline", "model=linear")
    assert code == 0 and out.strip() == "Wrote mlp-report.html (15 runs, 2 excluded)."
    assert (tmp_path / "mlp-report.html").read_text().startswith("<!DOCTYPE html>")
    code, out, _ = invoke(
        "report", "mlp", "--metric", "test_acc", "--format", "latex", "-o", str(tmp_path / "t.tex")
    )
    assert code == 0 and r"\toprule" in (tmp_path / "t.tex").read_text()


def test_json_output(invoke, experiment_store: Path) -> None:
    code, out, _ = invoke(
        "report", "mlp", "--metric", "loss", "--mode", "min", "--baseline", "model=linear", "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["by"] == "model" and len(data["rows"]) == 3
    assert [e["status"] for e in data["excluded"]] == ["failed", "crashed"]
    assert "Holm-corrected" in data["methods"]


def test_usage_errors_exit_2(invoke, experiment_store: Path) -> None:
    code, _, err = invoke("report", "mlp")
    assert (
        code == 2
        and "Choose the metric to report with --metric; these runs record: loss, test_acc" in err
    )
    code, _, err = invoke("report", "mlp", "--metric", "test_acc", "--baseline", "optim=adam")
    assert code == 2 and "use --baseline model=VALUE" in err
    code, _, err = invoke("report", "nope", "--metric", "x")
    assert code == 2 and "No runs of experiment 'nope'" in err


def test_subprocess_help_and_run(invoke, experiment_store: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "replicator", "report", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "replicator report mlp --group-by model" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "replicator",
            "report",
            "mlp",
            "--metric",
            "test_acc",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.startswith(
        "# test_acc: mean ± sample standard deviation"
    )
