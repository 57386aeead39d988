"""Secret scanning: `replicator release check` vs `detect-secrets scan`, command against command.

Two trees, each scanned by both tools as the command a user types, in a fresh process, on the
same git-tracked files:

    python -m replicator release check --no-formatting --json ROOT
    detect-secrets scan --no-verify        (in ROOT; --no-verify: no network verification,
                                            which offline costs seconds of DNS time-outs)

1. The planted fixture (tests/release/release_secrets_fixture.py): 19 kinds of keys in Python,
   YAML, JSON, TOML, shell scripts, notebook sources and outputs, credential files (.env,
   .netrc, kaggle.json, id_rsa), and decoys that must not be flagged (commit hashes, UUIDs,
   lock-file checksums, AWS's documented example key, placeholders).
2. This repository's own tracked files at HEAD (a `git archive` copy, so that both tools see the
   same files whatever is uncommitted in the working tree).

Found: a planted secret counts as found when the tool reports a line that holds it (credential
files: any finding in the file). False positives, the same rule for both tools and over every
file: a reported line (file, line) that holds no planted value is a false positive; in a
credential file no finding is. In this repository no line holds a real credential, so every
reported line is a false positive; they are listed so that each can be checked.

Times: medians of the same number of runs for both tools, alternated run by run, wall-clock
and CPU (user + system of the child process), interpreter start-up included.

Run: .venv-bench/bin/python benchmarks/bench_secrets.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "release"))

from release_secrets_fixture import Plant, build_fixture  # noqa: E402

BIN = Path(sys.executable).parent
NOT_SECRET_RULES = {
    "absolute-path",
    "readme-missing",
    "readme-incomplete",
    "license-missing",
    "citation-missing",
    "formatting",
    "notebook-outputs",
    "large-file",
}
Lines = dict[str, set[int | None]]  # file -> reported lines (None: the whole file)


def replicator_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "replicator", "release", "check", "--no-formatting", "--json",
            *extra, str(root)]  # fmt: skip


def detect_secrets_cmd(root: Path) -> list[str]:
    return [str(BIN / "detect-secrets"), "scan", "--no-verify"]


def replicator_lines(out: str, *, history: bool = False) -> Lines:
    found: Lines = defaultdict(set)
    for f in json.loads(out)["findings"]:
        if f["rule"] not in NOT_SECRET_RULES and (f["commit"] is not None) == history:
            found[f["file"]].add(f["line"])
    return found


def detect_secrets_lines(out: str) -> Lines:
    found: Lines = defaultdict(set)
    for file, results in json.loads(out)["results"].items():
        for r in results:
            found[file].add(r["line_number"])
    return found


def timed(cmds: list[list[str]], cwd: Path, repeat: int) -> list[tuple[float, float, str]]:
    """For each command: median wall-clock and CPU seconds of ``repeat`` runs, the commands
    alternated run by run, and the last run's output. A failing command raises."""
    walls: list[list[float]] = [[] for _ in cmds]
    cpus: list[list[float]] = [[] for _ in cmds]
    outs = ["" for _ in cmds]
    for _ in range(repeat):
        for i, cmd in enumerate(cmds):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
            walls[i].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[i].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if proc.returncode not in (0, 1):  # 1: replicator found something
                raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
            outs[i] = proc.stdout
    return [
        (statistics.median(w), statistics.median(c), o)
        for w, c, o in zip(walls, cpus, outs, strict=True)
    ]


def secret_lines(root: Path, plants: list[Plant]) -> Lines:
    """The lines (1-based) of each file that hold a planted value, as written or JSON-escaped."""
    truth: Lines = defaultdict(set)
    for p in plants:
        if p.kind == "credential-file":
            text = (root / p.file).read_text()
            truth[p.file] |= {None, *range(1, len(text.splitlines()) + 1)}
            continue
        pieces = [v.strip() for v in p.value.splitlines() if len(v.strip()) >= 8]
        pieces += [json.dumps(v)[1:-1] for v in pieces]
        for number, line in enumerate((root / p.file).read_text().splitlines(), start=1):
            if any(piece in line for piece in pieces):
                truth[p.file].add(number)
    return truth


def found(lines: Lines, plant: Plant, root: Path) -> bool:
    if plant.kind == "credential-file":
        return bool(lines.get(plant.file))
    held = secret_lines(root, [plant])[plant.file]
    return bool(lines.get(plant.file, set()) & held)


def false_positives(lines: Lines, truth: Lines) -> list[str]:
    return sorted(
        f"{file}:{line}"
        for file, numbers in lines.items()
        for line in numbers
        if line not in truth.get(file, set())
    )


def fixture(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fixture"
        plants, _ = build_fixture(root)
        current = [p for p in plants if not p.in_history_only]
        (t_rep, c_rep, out_rep), (t_ds, c_ds, out_ds) = timed(
            [replicator_cmd(root), detect_secrets_cmd(root)], root, repeat
        )
        rep, ds = replicator_lines(out_rep), detect_secrets_lines(out_ds)
        truth = secret_lines(root, current)

        by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for p in current:
            row = by_kind[p.kind]
            row[0] += 1
            row[1] += found(rep, p, root)
            row[2] += found(ds, p, root)
        fp_rep, fp_ds = false_positives(rep, truth), false_positives(ds, truth)

        ((_, _, out_hist),) = timed([replicator_cmd(root, "--history")], root, 1)
        old = [p for p in plants if p.in_history_only]
        old_found = replicator_lines(out_hist, history=True).get("scripts/old_train.py", set())

    print(
        f"1. fixture: {len(current)} planted secrets in the working tree, {len(old)} in a past commit"
    )
    print(f"{'kind':<18} {'planted':>7} {'replicator':>11} {'detect-secrets':>15}")
    for kind, (n, a, b) in sorted(by_kind.items()):
        print(f"{kind:<18} {n:>7} {a:>11} {b:>15}")
    total = [sum(r[i] for r in by_kind.values()) for i in range(3)]
    print(f"{'TOTAL':<18} {total[0]:>7} {total[1]:>11} {total[2]:>15}")
    print(f"recall: replicator {total[1] / total[0]:.1%}, detect-secrets {total[2] / total[0]:.1%}")
    print(f"false positives (reported lines that hold no planted value, all files): "
          f"replicator {len(fp_rep)}, detect-secrets {len(fp_ds)}")  # fmt: skip
    for name, fps in (("replicator", fp_rep), ("detect-secrets", fp_ds)):
        if fps:
            print(f"  {name}: {', '.join(fps)}")
    print(f"history: replicator --history reported {len(old_found)} lines for the {len(old)} keys "
          "of the deleted file (detect-secrets: no history scan)")  # fmt: skip
    print(f"time, median of {repeat}: replicator {t_rep * 1000:.0f} ms wall ({c_rep * 1000:.0f} ms "
          f"CPU), detect-secrets --no-verify {t_ds * 1000:.0f} ms wall ({c_ds * 1000:.0f} ms CPU); "
          f"ratio {t_ds / t_rep:.1f}x wall, {c_ds / c_rep:.1f}x CPU")  # fmt: skip


def own_repository(repeat: int) -> None:
    repo = HERE.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "replicator"
        root.mkdir()
        archive = Path(tmp) / "head.tar"
        subprocess.run(["git", "archive", "-o", str(archive), "HEAD"], cwd=repo, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        files = len(subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                                   check=True).stdout.splitlines())  # fmt: skip
        (t_rep, c_rep, out_rep), (t_ds, c_ds, out_ds) = timed(
            [replicator_cmd(root), detect_secrets_cmd(root)], root, repeat
        )
    fp_rep = false_positives(replicator_lines(out_rep), {})
    fp_ds = false_positives(detect_secrets_lines(out_ds), {})
    print(
        f"\n2. this repository at {head} ({files} tracked files); no line holds a real credential"
    )
    print(
        f"false positives (reported lines): replicator {len(fp_rep)}, detect-secrets {len(fp_ds)}"
    )
    for name, fps in (("replicator", fp_rep), ("detect-secrets", fp_ds)):
        if fps:
            print(f"  {name}: {', '.join(fps)}")
    print(f"time, median of {repeat}: replicator {t_rep * 1000:.0f} ms wall ({c_rep * 1000:.0f} ms "
          f"CPU), detect-secrets --no-verify {t_ds * 1000:.0f} ms wall ({c_ds * 1000:.0f} ms CPU); "
          f"ratio {t_ds / t_rep:.1f}x wall, {c_ds / c_rep:.1f}x CPU")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fixture(args.repeat)
    own_repository(args.repeat)


if __name__ == "__main__":
    main()
