"""Results tables: numbers, best bold, significance marks, methods text in every format."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from replicator.errors import UsageError
from replicator.report import results_table, to_csv, to_html, to_latex, to_markdown
from replicator.store.frames import load_runs


def runs_frame() -> pd.DataFrame:
    acc = {
        "linear": [0.80, 0.81, 0.79, 0.80, 0.82],
        "mlp": [0.85, 0.86, 0.84, 0.87, 0.85],
        "tiny": [0.80, 0.83, 0.78, 0.81, 0.80],
    }
    rows = [
        {"id": f"{m}{i}", "config.model": m, "summary.test_acc": v}
        for m, vals in acc.items()
        for i, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


def test_table_numbers_tests_and_correction() -> None:
    df = runs_frame()
    t = results_table(df, metric="test_acc", by="model", baseline="model=linear")
    rows = {r.group: r for r in t.rows}
    lin, mlp = np.array([0.80, 0.81, 0.79, 0.80, 0.82]), np.array([0.85, 0.86, 0.84, 0.87, 0.85])
    p_raw = st.ttest_ind(mlp, lin, equal_var=False).pvalue
    assert rows["mlp"].p_value == pytest.approx(p_raw)
    assert rows["mlp"].p_adjusted >= rows["mlp"].p_value  # Holm over two comparisons
    assert rows["mlp"].significant and not rows["tiny"].significant
    assert rows["mlp"].best and rows["linear"].baseline and rows["linear"].p_value is None
    assert t.methods.startswith(
        "test_acc: mean ± sample standard deviation over 5 seeds per model; 95% t-interval;"
    )
    assert (
        "Welch's t-test of each group against linear (Δ: difference of means), Holm-corrected over 2 comparison(s)"
        in t.methods
    )
    assert rows["mlp"].low == pytest.approx(
        st.t.interval(0.95, 4, loc=mlp.mean(), scale=st.sem(mlp))[0]
    )
    assert (
        results_table(df, metric="test_acc", by="model", mode="min").rows[0].best
    )  # linear lowest


def test_markdown_latex_html_csv() -> None:
    t = results_table(runs_frame(), metric="test_acc", by="model", baseline="linear")
    md = to_markdown(t)
    assert "| model | n | test_acc (mean ± SD) | 95% CI | Δ mean vs linear | p (holm) |" in md
    assert "**0.854 ± 0.011**" in md and "†" in md and "linear (baseline)" in md
    tex = to_latex(t, label="tab:acc")
    for needle in (
        r"\toprule",
        r"\midrule",
        r"\bottomrule",
        r"\textbf{0.854}",
        r"$^{\dagger}$",
        r"\label{tab:acc}",
    ):
        assert needle in tex
    assert r"\caption{test\_acc: mean $\pm$ sample standard deviation over 5 seeds" in tex
    assert "p $<$ 0.05" in tex  # a bare < would print as an inverted exclamation mark
    html = to_html(t)
    assert (
        "<caption>" in html
        and "<strong>0.854 ± 0.011</strong>" in html
        and 'class="methods"' in html
    )
    assert "methods" not in to_html(t, methods=False).split("</table>")[1]
    csv = to_csv(t)
    assert csv.startswith("# test_acc: mean")
    back = pd.read_csv(io.StringIO(csv), comment="#")
    assert list(back["model"]) == ["linear", "mlp", "tiny"] and back["n"].tolist() == [5, 5, 5]


def test_small_samples_carry_the_rank_test_warning() -> None:
    df = runs_frame().groupby("config.model").head(3)
    t = results_table(df, metric="test_acc", by="model", baseline="linear", test="mann-whitney")
    assert t.warnings and "cannot give p below 0.100" in t.warnings[0]
    assert "Warning: With 3 vs 3 values" in to_markdown(t)


def test_baseline_errors() -> None:
    df = runs_frame()
    with pytest.raises(UsageError, match="grouped by 'model'; use --baseline model=VALUE"):
        results_table(df, metric="test_acc", by="model", baseline="optim=sgd")
    with pytest.raises(
        UsageError, match="Baseline 'rnn' is not one of the groups: linear, mlp, tiny"
    ):
        results_table(df, metric="test_acc", by="model", baseline="model=rnn")
    with pytest.raises(UsageError, match="mode must be 'max' or 'min'"):
        results_table(df, metric="test_acc", by="model", mode="best")


def test_table_from_a_store(experiment_store: Path) -> None:
    t = results_table(
        load_runs(experiment="mlp"), metric="test_acc", by="model", baseline="model=linear"
    )
    assert [r.group for r in t.rows] == ["cnn", "linear", "mlp"] and all(r.n == 5 for r in t.rows)
