"""Render a :class:`~.check.CheckReport` as text, JSON or SARIF 2.1.0 (for code-scanning upload).

SARIF: one run, the rules that produced results in ``tool.driver.rules`` (id, descriptions, help,
default level), each result with ``ruleId``/``ruleIndex``, ``level``, a message, one physical
location relative to ``%SRCROOT%`` (line region when known) and ``partialFingerprints`` from the
finding's hash, so that GitHub tracks a finding across pushes.
"""

from __future__ import annotations

import json

from .._version import __version__
from .check import CheckReport
from .findings import Finding

__all__ = ["RULE_HELP", "format_json", "format_sarif", "format_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

RULE_HELP: dict[str, str] = {
    "high-entropy-secret": "A random-looking value assigned to a name such as key, token, secret "
    "or password.",
    "url-credentials": "A password in a URL (scheme://user:password@host).",
    "credential-file": "A file that holds credentials (.env, .netrc, kaggle.json, SSH keys).",
    "absolute-path": "A hard-coded absolute path (home directory, cluster storage, drive letter).",
    "readme-missing": "The project has no README.",
    "readme-incomplete": "The README misses items of the ML Code Completeness Checklist.",
    "license-missing": "The project has no LICENSE file.",
    "citation-missing": "The project has no citation information.",
    "formatting": "A Python file is not formatted (ruff format / black).",
    "notebook-outputs": "A notebook was saved with its outputs.",
    "large-file": "A file over 50 MiB is in the repository.",
}


def _rule_help(rule: str) -> str:
    if rule in RULE_HELP:
        return RULE_HELP[rule]
    from ..redact import SECRET_PATTERNS

    for pattern in SECRET_PATTERNS:
        if pattern.rule == rule:
            return f"A {pattern.description}."
    return rule


def format_text(report: CheckReport, *, fail_on: str = "error") -> str:
    """Human-readable findings, worst first, and a one-line summary."""
    lines: list[str] = []
    for f in report.findings:
        lines.append(f"{f.location}: {f.severity}[{f.rule}] {f.message}")
        if f.snippet:
            lines.append(f"    {f.snippet}")
        lines.append(f"    fix: {f.fix}")
    if any(f.commit for f in report.findings):
        lines.append(
            "Secrets in history stay readable in every clone even after deletion: rotate them, "
            "then purge history (git filter-repo) or publish with `replicator release export`."
        )
    counts = ", ".join(f"{report.count(s)} {s}s" for s in ("error", "warning", "note"))
    extra = []
    if report.suppressed:
        extra.append(f"{report.suppressed} suppressed inline")
    if report.baselined:
        extra.append(f"{report.baselined} in the baseline")
    if report.formatter is None and report.formatting_requested:
        extra.append("formatting not checked: neither ruff nor black is installed")
    if report.readme is not None:
        extra.append(f"README {report.readme.score}/5")
    scope = "working tree and history" if report.history else "working tree"
    tail = f" ({'; '.join(extra)})" if extra else ""
    verdict = "FAILED" if report.failed(fail_on) else "ok"
    lines.append(
        f"{verdict}: {counts} in {report.files_checked} files ({scope}){tail}; fails on: {fail_on}"
    )
    return "\n".join(lines)


def format_json(report: CheckReport) -> str:
    """The report as indented JSON (``replicator release check --format json``)."""
    return json.dumps(report.as_dict(), indent=2)


def _location(f: Finding) -> dict[str, object]:
    physical: dict[str, object] = {
        "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
    }
    if f.line:
        region: dict[str, object] = {"startLine": f.line}
        if f.snippet:
            region["snippet"] = {"text": f.snippet}
        physical["region"] = region
    return {"physicalLocation": physical}


def format_sarif(report: CheckReport) -> str:
    """SARIF 2.1.0 JSON (valid against the OASIS schema; accepted by GitHub code scanning)."""
    rules: list[str] = []
    for f in report.findings:
        if f.rule not in rules:
            rules.append(f.rule)
    level_of: dict[str, str] = {}
    for f in report.findings:
        level_of.setdefault(f.rule, f.severity)
    driver_rules = [
        {
            "id": rule,
            "name": "".join(part.capitalize() for part in rule.split("-")),
            "shortDescription": {"text": _rule_help(rule)},
            "fullDescription": {"text": _rule_help(rule)},
            "help": {"text": next(f.fix for f in report.findings if f.rule == rule)},
            "defaultConfiguration": {"level": level_of[rule]},
        }
        for rule in rules
    ]
    results = []
    for f in report.findings:
        result: dict[str, object] = {
            "ruleId": f.rule,
            "ruleIndex": rules.index(f.rule),
            "level": f.severity,
            "message": {"text": f"{f.message}. Fix: {f.fix}"},
            "locations": [_location(f)],
            "partialFingerprints": {"replicatorFinding/v1": f.fingerprint},
        }
        if f.commit:
            result["properties"] = {"commit": f.commit}
        results.append(result)
    root_uri = report.root.as_uri() + "/"
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "replicator",
                        "semanticVersion": __version__,
                        "informationUri": "https://pypi.org/project/replicator/",
                        "rules": driver_rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root_uri}},
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2)
