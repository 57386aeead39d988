"""Planted secrets of every kind in every file type are found; decoys are not flagged."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest
from release_secrets_fixture import DECOY_FILES, Plant, build_fixture, make_secrets

from replicator.redact import SECRET_PATTERNS, redact_text
from replicator.release import check_release
from replicator.release.findings import fingerprint
from replicator.release.scan import scan_secrets

SECRET_RULES = {p.rule for p in SECRET_PATTERNS} | {
    "high-entropy-secret",
    "credential-file",
    "url-credentials",
}


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fixture") / "repo"
    plants, decoys = build_fixture(root)
    return root, plants, decoys


@pytest.fixture(scope="module")
def history_report(fixture_repo):
    root, _, _ = fixture_repo
    return check_release(root, history=True, formatting=False)


def _found(report, plant) -> bool:
    for f in report.findings:
        if f.file != plant.file or f.rule not in SECRET_RULES:
            continue
        if plant.in_history_only and f.commit is None:
            continue
        if plant.kind == "credential-file":
            if f.rule == "credential-file":
                return True
        elif plant.kind == "private-key":
            if f.rule == "private-key" and f.severity == "error":
                return True
        elif f.fingerprint in {fingerprint(r, plant.file, plant.secret) for r in SECRET_RULES}:
            return True
    return False


def test_every_planted_secret_is_found(fixture_repo, history_report) -> None:
    _, plants, _ = fixture_repo
    missed = [(p.kind, p.file) for p in plants if not _found(history_report, p)]
    assert missed == []
    kinds = {p.kind for p in plants}
    assert len(kinds) == 20  # 19 key kinds + credential files
    assert {p.file.rsplit(".", 1)[-1] for p in plants} >= {
        "py",
        "yaml",
        "json",
        "toml",
        "sh",
        "ipynb",
    }


def test_no_decoy_is_flagged(fixture_repo, history_report) -> None:
    _, _, decoys = fixture_repo
    flagged = [
        (f.file, f.line, f.rule)
        for f in history_report.findings
        if f.rule in SECRET_RULES and f.file in DECOY_FILES
    ]
    assert flagged == []
    decoy_prints = {fingerprint(r, f, d) for r in SECRET_RULES for f in DECOY_FILES for d in decoys}
    assert not [f for f in history_report.findings if f.fingerprint in decoy_prints]


def test_secrets_never_printed_in_full(fixture_repo, history_report) -> None:
    _, plants, _ = fixture_repo
    from replicator.release import format_json, format_sarif, format_text

    outputs = (
        format_text(history_report) + format_json(history_report) + format_sarif(history_report)
    )
    leaked = [p.kind for p in plants if p.secret and p.secret in outputs]
    assert leaked == []
    for line in next(iter(make_secrets(100).values()))[1:]:
        assert line not in outputs


def test_history_only_secrets_need_history_flag(fixture_repo, history_report) -> None:
    root, _, _ = fixture_repo
    report = check_release(root, formatting=False)
    assert not [f for f in report.findings if f.file == "scripts/old_train.py"]
    old = [f for f in history_report.findings if f.file == "scripts/old_train.py"]
    assert len(old) == 19
    first = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    assert {f.commit for f in old} == {first}
    assert all("rotate" in f.fix and "filter-repo" in f.fix for f in old)


def test_notebook_findings_point_at_file_lines(fixture_repo, history_report) -> None:
    root, plants, _ = fixture_repo
    lines = (root / "notebooks/results.ipynb").read_text().splitlines()
    found = [
        f
        for f in history_report.findings
        if f.file == "notebooks/results.ipynb" and f.rule in SECRET_RULES
    ]
    assert found and all(f.line for f in found)
    values = {p.value for p in plants if p.file == "notebooks/results.ipynb"}
    for f in found:
        if f.rule != "private-key":
            assert any(v in lines[f.line - 1] for v in values), (f.rule, f.line)
        assert "output" in f.message


def test_line_numbers_in_plain_files(fixture_repo, history_report) -> None:
    root, plants, _ = fixture_repo
    lines = (root / "configs/secrets.yaml").read_text().splitlines()
    for plant in [
        p for p in plants if p.file == "configs/secrets.yaml" and p.kind != "private-key"
    ]:
        f = next(
            f
            for f in history_report.findings
            if f.file == plant.file
            and f.fingerprint in {fingerprint(r, plant.file, plant.secret) for r in SECRET_RULES}
        )
        assert plant.value in lines[f.line - 1]


def test_inline_suppressions() -> None:
    value = make_secrets(5)["huggingface"][1]
    text = "\n".join(
        [
            f'a = "{value}"  # replicator: ignore[huggingface-token]',
            f'b = "{value}"  # pragma: allowlist secret',
            f'c = "{value}"  # gitleaks:allow',
            "# pragma: allowlist nextline secret",
            f'd = "{value}"',
            f'e = "{value}"  # replicator: ignore[absolute-path]',
            f'f = "{value}"  # replicator: ignore',
        ]
    )
    found = scan_secrets(text, "x.py")
    assert [f.line for f in found] == [6]
    assert value not in found[0].snippet and value[:4] in found[0].snippet


def test_private_key_header_alone_is_a_warning() -> None:
    header = "-----" + "BEGIN OPENSSH " + "PRIVATE KEY-----"
    found = scan_secrets(f"Keys look like this:\n{header}\n...\n", "notes.txt")
    assert [(f.rule, f.severity) for f in found] == [("private-key", "warning")]


def test_shared_patterns_redact_at_capture_time() -> None:
    secrets = make_secrets(9)
    for kind in ("huggingface", "github", "google", "aws-key-id", "neptune", "slack-bot"):
        value = secrets[kind][1]
        assert value not in redact_text(f"token {value} here"), kind
    pem = secrets["private-key"][1]
    redacted = redact_text(f"before\n{pem}\nafter")
    assert "before" in redacted and "after" in redacted
    assert pem.splitlines()[2] not in redacted  # the key body goes too
    google = "AI" + "za" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7-"
    assert google not in redact_text(f'key="{google}"')


def test_credential_file_untracked_but_not_ignored(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".gitignore").write_text(".env.local\n")
    (tmp_path / ".env").write_text("X=1\n")
    (tmp_path / ".env.local").write_text("X=1\n")
    (tmp_path / ".env.example").write_text("HF_TOKEN=\n")
    report = check_release(tmp_path, formatting=False)
    creds = [f for f in report.findings if f.rule == "credential-file"]
    assert [(f.file, "not ignored" in f.message) for f in creds] == [(".env", True)]


def test_snippet_masks_every_secret_on_the_line() -> None:
    secrets = make_secrets(12)
    one, two = secrets["generic-secret"][1], secrets["generic-password"][1]
    found = scan_secrets(f'client_secret = "{one}"; db_password = "{two}"', "a.py")
    assert len(found) == 2
    for f in found:
        assert one not in f.snippet and two not in f.snippet


def test_two_megabyte_one_line_json_is_scanned_whole(tmp_path: Path, run_cli) -> None:
    """A 2 MB one-line JSON export (the shape of a tracker's run dump) with a secret in every
    fourth record: every one is found, on line 1, and nothing else is. The scan used to rerun a
    regex over the whole line once per finding: minutes for this file, caught by --timeout."""
    kinds = [k for k in make_secrets(0) if k not in ("private-key", "generic-password")]
    rng = random.Random(3)
    records: list[dict[str, object]] = []
    planted: list[tuple[str, str]] = []  # (kind, the part a scanner reports)
    size = 0
    while size < 2_000_000:
        n = len(records)
        record: dict[str, object] = {
            "run": str(uuid.UUID(int=rng.getrandbits(128))),
            "commit": "".join(rng.choice("0123456789abcdef") for _ in range(40)),
            "loss": rng.random(),
            "notes": "lr sweep, warmup 500 steps, cosine decay " * 2,
        }
        if n % 4 == 0:
            kind = kinds[(n // 4) % len(kinds)]
            name, value = make_secrets(n)[kind]
            record = {name: value, **record}
            planted.append((kind, Plant(kind, "runs.json", value).secret))
        records.append(record)
        size += len(json.dumps(record)) + 2
    root = tmp_path / "repo"
    root.mkdir()
    (root / "runs.json").write_text(json.dumps(records))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    assert (root / "runs.json").stat().st_size > 2_000_000

    code, out, _ = run_cli("release", "check", "--no-formatting", "--json", str(root))
    assert code == 1
    found = [f for f in json.loads(out)["findings"] if f["rule"] in SECRET_RULES]
    assert {f["file"] for f in found} == {"runs.json"} and {f["line"] for f in found} == {1}
    prints = {f["fingerprint"] for f in found}
    missed = [
        kind
        for kind, secret in planted
        if not prints & {fingerprint(r, "runs.json", secret) for r in SECRET_RULES}
    ]
    assert missed == []
    assert len(found) == len(planted) > 1000
    assert not [f for f in found if any(s in f["snippet"] for _, s in planted)]
