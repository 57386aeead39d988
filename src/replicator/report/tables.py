"""Render a :class:`ResultsTable` as Markdown, LaTeX (booktabs), HTML or CSV.

Every format carries n per row, the statistic, the interval and the test: Markdown and HTML put
the methods paragraph under the table, LaTeX puts it in the caption. The best row is bold; a row
whose difference to the baseline is significant after correction carries a dagger (†).
"""

from __future__ import annotations

import html
import io

from ..stats._common import level_text
from .results import ResultRow, ResultsTable, number

__all__ = ["to_csv", "to_html", "to_latex", "to_markdown"]

DAGGER = "†"


def _headers(t: ResultsTable) -> list[str]:
    centre = {"mean": "mean", "median": "median", "iqm": "IQM"}[t.center]
    cols = [
        t.by.removeprefix("config.") if t.by else "group",
        "n",
        f"{t.metric} ({centre} ± SD)",
        f"{level_text(t.level)} CI",
    ]
    if t.baseline is not None and t.test is not None:
        cols += [
            f"Δ mean vs {t.baseline}",
            f"p ({t.correction if t.correction != 'none' else 'raw'})",
        ]
    return cols


def _cells(t: ResultsTable, r: ResultRow, digits: int) -> list[str]:
    cells = [
        r.group + (" (baseline)" if r.baseline else ""),
        str(r.n),
        f"{number(r.center, digits)} ± {number(r.std, digits)}",
        f"[{number(r.low, digits)}, {number(r.high, digits)}]",
    ]
    if t.baseline is not None and t.test is not None:
        cells += [
            "" if r.difference is None else f"{r.difference:+.{digits}f}",
            ""
            if r.p_adjusted is None
            else number(r.p_adjusted, digits) + (f" {DAGGER}" if r.significant else ""),
        ]
    return cells


def to_markdown(t: ResultsTable, *, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table followed by the methods paragraph."""
    head = _headers(t)

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        "| " + " | ".join(map(esc, head)) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for r in t.rows:
        cells = [esc(c) for c in _cells(t, r, digits)]
        if r.best:
            cells[2] = f"**{cells[2]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"*{t.methods}*")
    for w in t.warnings:
        lines.append(f"\n> Warning: {w}")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "<": r"$<$",
    ">": r"$>$",
    "†": r"$^{\dagger}$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(t: ResultsTable, *, digits: int = 3, label: str | None = None) -> str:
    """A booktabs ``table`` environment; the caption holds the methods paragraph.

    Needs ``\\usepackage{booktabs}`` in the preamble.
    """
    head = _headers(t)
    spec = "l" + "r" * (len(head) - 1)
    out = [
        r"\begin{table}[t]",
        r"  \centering",
        f"  \\caption{{{latex_escape(t.methods)}}}",
    ]
    if label:
        out.append(f"  \\label{{{label}}}")
    out += [
        f"  \\begin{{tabular}}{{{spec}}}",
        r"    \toprule",
        "    " + " & ".join(latex_escape(h) for h in head) + r" \\",
        r"    \midrule",
    ]
    for r in t.rows:
        cells = _cells(t, r, digits)
        centre, _, sd = cells[2].partition(" ± ")
        cells[2] = f"{centre} $\\pm$ {sd}"
        if r.best:
            cells[2] = f"\\textbf{{{centre}}} $\\pm$ \\textbf{{{sd}}}"
        escaped = (
            [latex_escape(c) for c in cells[:2]] + [cells[2]] + [latex_escape(c) for c in cells[3:]]
        )
        out.append("    " + " & ".join(escaped) + r" \\")
    out += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def to_html(t: ResultsTable, *, digits: int = 3, methods: bool = True) -> str:
    """An HTML ``<table>`` (with ``<caption>``) and the methods paragraph, no styles of its own."""
    head = _headers(t)
    parts = [
        '<table class="results">',
        f"<caption>{html.escape(t.caption)}</caption>",
        "<thead><tr>",
    ]
    parts += [f"<th>{html.escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for r in t.rows:
        cells = [html.escape(c) for c in _cells(t, r, digits)]
        if r.best:
            cells[2] = f"<strong>{cells[2]}</strong>"
        cls = ' class="baseline"' if r.baseline else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    if methods:
        parts.append(f'<p class="methods">{html.escape(t.methods)}</p>')
    for w in t.warnings:
        parts.append(f'<p class="warning">Warning: {html.escape(w)}</p>')
    return "\n".join(parts) + "\n"


def to_csv(t: ResultsTable) -> str:
    """The numbers at full precision, one row per group, plus a ``# methods`` comment line."""
    buf = io.StringIO()
    t.to_frame().to_csv(buf, index=False)
    return f"# {t.methods}\n" + buf.getvalue()
