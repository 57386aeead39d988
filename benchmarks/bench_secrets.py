"""Secret scanning: replicator release check vs detect-secrets on the same planted fixture.

The fixture (tests/release/release_secrets_fixture.py) plants 18 kinds of keys in Python, YAML,
JSON, TOML, shell scripts, notebook sources and notebook outputs, plus credential files (.env,
.netrc, kaggle.json, id_rsa), and writes decoys that must not be flagged: git commit hashes,
UUIDs, lock-file checksums, AWS's documented example key, placeholders.

A planted secret counts as found when the tool reports the line that holds it (for credential
files: any finding in the file). A false positive is any finding in a decoy file. Both tools scan
the same git-tracked files of the working tree (detect-secrets has no history scan; replicator's
--history recall is reported on its own). Times are medians of 3 runs, side by side.

Run: .venv/bin/python benchmarks/bench_secrets.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "release"))

from release_secrets_fixture import DECOY_FILES, build_fixture  # noqa: E402

from replicator.release import check_release  # noqa: E402

DETECT_SECRETS = Path(sys.executable).parent / "detect-secrets"
SECRET_RULES_EXCLUDED = {
    "absolute-path",
    "readme-missing",
    "readme-incomplete",
    "license-missing",
    "citation-missing",
    "formatting",
    "notebook-outputs",
    "large-file",
}


def plant_line(root: Path, plant) -> int | None:
    """1-based line of the file that holds the planted value (the PEM header for keys)."""
    lines = (root / plant.file).read_text().splitlines()
    needle = plant.value.splitlines()[0] if plant.value else None
    if plant.kind == "private-key":
        needle = "PRIVATE KEY-----"
    if needle is None:
        return None
    escaped = json.dumps(needle)[1:-1]
    for i, line in enumerate(lines, start=1):
        if needle in line or escaped in line:
            return i
    return None


def run_replicator(root: Path) -> dict[str, set[int | None]]:
    report = check_release(root, formatting=False)
    found: dict[str, set[int | None]] = defaultdict(set)
    for f in report.findings:
        if f.rule not in SECRET_RULES_EXCLUDED and f.commit is None:
            found[f.file].add(f.line)
    return found


def run_replicator_cli(root: Path) -> None:
    """The same check as a fresh process, like detect-secrets' CLI (interpreter start included)."""
    subprocess.run(
        [sys.executable, "-m", "replicator", "release", "check", "--no-formatting", str(root)],
        capture_output=True,
        check=False,
    )


def run_detect_secrets(root: Path) -> dict[str, set[int | None]]:
    proc = subprocess.run(
        [str(DETECT_SECRETS), "scan"], cwd=root, capture_output=True, text=True, check=True
    )
    found: dict[str, set[int | None]] = defaultdict(set)
    for file, results in json.loads(proc.stdout)["results"].items():
        for r in results:
            found[file].add(r["line_number"])
    return found


def timed(fn, root: Path, repeat: int = 3) -> tuple[float, dict[str, set[int | None]]]:
    times, result = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(root)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fixture"
        plants, _ = build_fixture(root)
        current = [p for p in plants if not p.in_history_only]
        t_rep, rep = timed(run_replicator, root)
        t_ds, ds = timed(run_detect_secrets, root)
        t_cli, _ = timed(run_replicator_cli, root)

        by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for p in current:
            line = plant_line(root, p)
            row = by_kind[p.kind]
            row[0] += 1
            for col, found in ((1, rep), (2, ds)):
                hit = (
                    bool(found.get(p.file))
                    if p.kind == "credential-file"
                    else line in found.get(p.file, set())
                )
                row[col] += hit
        fp_rep = sum(len(rep.get(f, ())) for f in DECOY_FILES)
        fp_ds = sum(len(ds.get(f, ())) for f in DECOY_FILES)
        fp_ds_files = sorted(f for f in DECOY_FILES if ds.get(f))

        history = check_release(root, history=True, formatting=False)
        old = [p for p in plants if p.in_history_only]
        old_found = {
            f.line for f in history.findings if f.file == "scripts/old_train.py" and f.commit
        }

        print(
            f"fixture: {len(current)} planted secrets in the working tree, {len(old)} in a past commit"
        )
        print(f"{'kind':<18} {'planted':>7} {'replicator':>11} {'detect-secrets':>15}")
        for kind, (n, a, b) in sorted(by_kind.items()):
            print(f"{kind:<18} {n:>7} {a:>11} {b:>15}")
        total = [sum(r[i] for r in by_kind.values()) for i in range(3)]
        print(f"{'TOTAL':<18} {total[0]:>7} {total[1]:>11} {total[2]:>15}")
        print(
            f"recall: replicator {total[1] / total[0]:.1%}, detect-secrets {total[2] / total[0]:.1%}"
        )
        print(
            f"false positives on decoys: replicator {fp_rep}, detect-secrets {fp_ds} (files: {', '.join(fp_ds_files)})"
        )
        print(
            f"history: replicator --history found {len(old_found)}/{len(old)} (detect-secrets: no history scan)"
        )
        print(
            f"time (median of 3): replicator in-process {t_rep * 1000:.0f} ms, as a CLI process "
            f"{t_cli * 1000:.0f} ms; detect-secrets CLI {t_ds * 1000:.0f} ms; "
            f"ratio CLI to CLI {t_ds / t_cli:.1f}x"
        )

    # A real tree: this repository's own tracked files.
    repo = HERE.parent
    t_rep, rep = timed(run_replicator, repo)
    t_ds, ds = timed(run_detect_secrets, repo)
    n_rep = sum(len(v) for v in rep.values())
    n_ds = sum(len(v) for v in ds.values())
    print(
        f"replicator's own repository: replicator {t_rep * 1000:.0f} ms ({n_rep} secret findings), "
        f"detect-secrets {t_ds * 1000:.0f} ms ({n_ds} findings), ratio {t_ds / t_rep:.1f}x"
    )


if __name__ == "__main__":
    main()
