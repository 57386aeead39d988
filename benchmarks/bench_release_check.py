"""Secret scanning time over file size: `replicator release check` vs `detect-secrets scan`.

One file per repository: a generated JSON export of runs (records with run ids, commit hashes,
losses, notes and a planted key every ~10 KB, so findings grow with the size) of 100 KB, 1 MB
and 10 MB, written two ways: as one line (one JSON array, as `json.dump` writes it) and as
one record per line (JSON Lines). Each tool runs as the command a user types, in a fresh
process, on the same git-tracked file:

    python -m replicator release check --no-formatting --json REPO
    detect-secrets scan --no-verify          (in REPO; no network verification)

Both are timed end to end (interpreter start included): the median of the same number of
repeats, the tools alternated run by run, wall-clock and CPU (user + system of the child). A run of a tool that takes longer
than --cap seconds is stopped; that tool is then not run on the larger files of that shape.

Run: .venv-bench/bin/python benchmarks/bench_release_check.py [--repeat 3] [--cap 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "release"))

from release_secrets_fixture import Plant, make_secrets  # noqa: E402

from replicator.redact import SECRET_PATTERNS  # noqa: E402
from replicator.release.findings import fingerprint  # noqa: E402

BIN = Path(sys.executable).parent
SIZES = (100_000, 1_000_000, 10_000_000)
SECRET_RULES = {p.rule for p in SECRET_PATTERNS} | {"high-entropy-secret", "url-credentials"}
KINDS = ("github", "huggingface", "aws-key-id", "openai-project", "slack-bot", "google")


def records(size: int) -> tuple[list[dict[str, object]], list[str]]:
    """Records of about ``size`` bytes in all, and the planted secrets (one per ~10 KB)."""
    rng = random.Random(size)
    out: list[dict[str, object]] = []
    planted: list[str] = []
    total = 0
    while total < size:
        record: dict[str, object] = {
            "run": str(uuid.UUID(int=rng.getrandbits(128))),
            "commit": "".join(rng.choice("0123456789abcdef") for _ in range(40)),
            "step": len(out),
            "loss": round(rng.random(), 6),
            "notes": "lr sweep, warmup 500 steps, cosine decay",
        }
        if total // 10_000 > len(planted) - 1 and len(out) % 7 == 3:
            kind = KINDS[len(planted) % len(KINDS)]
            name, value = make_secrets(len(out))[kind]
            record[name] = value
            planted.append(Plant(kind, "", value).secret)
        out.append(record)
        total += len(json.dumps(record)) + 2
    return out, planted


def make_repo(root: Path, text: str) -> None:
    root.mkdir(parents=True)
    (root / "runs.json").write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)


def run(cmd: list[str], cwd: Path, cap: float) -> tuple[float, float, str] | None:
    """(wall s, CPU s, stdout) of one run, or None when it took longer than ``cap``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode not in (0, 1):  # 1: replicator found something
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def replicator_cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "replicator", "release", "check", "--no-formatting", "--json",
            str(root)]  # fmt: skip


def detect_secrets_cmd(root: Path) -> list[str]:
    return [str(BIN / "detect-secrets"), "scan", "--no-verify"]


def found_replicator(out: str, planted: list[str]) -> tuple[int, int]:
    """(secret findings, planted secrets among them): a finding's fingerprint names its value."""
    findings = [f for f in json.loads(out)["findings"] if f["rule"] in SECRET_RULES]
    prints = {f["fingerprint"] for f in findings}
    hit = sum(
        bool(prints & {fingerprint(r, "runs.json", s) for r in SECRET_RULES}) for s in planted
    )
    return len(findings), hit


def found_detect_secrets(out: str, planted: list[str]) -> tuple[int, int]:
    """(findings, planted secrets among them): detect-secrets reports each value's SHA-1."""
    findings = [r for v in json.loads(out)["results"].values() for r in v]
    hashes = {r["hashed_secret"] for r in findings}
    hit = sum(hashlib.sha1(s.encode()).hexdigest() in hashes for s in planted)
    return len(findings), hit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cap", type=float, default=300.0)
    args = parser.parse_args()
    tools = {
        "replicator": (replicator_cmd, found_replicator),
        "detect-secrets": (detect_secrets_cmd, found_detect_secrets),
    }
    print(f"median of {args.repeat} runs each; a run over {args.cap:.0f} s is stopped")
    print(f"{'shape':<10} {'size':>8} {'planted':>7}  {'tool':<15} {'wall s':>8} {'CPU s':>8} "
          f"{'findings':>8} {'planted found':>13}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ("one line", "lines"):
            stopped: set[str] = set()
            for size in SIZES:
                recs, planted = records(size)
                if shape == "one line":
                    text = json.dumps(recs)
                else:
                    text = "\n".join(json.dumps(r) for r in recs) + "\n"
                root = Path(tmp) / f"{shape.replace(' ', '-')}-{size}"
                make_repo(root, text)
                walls: dict[str, float] = {}
                results: dict[str, list[tuple[float, float, str]]] = {n: [] for n in tools}
                for _ in range(args.repeat):  # the tools alternated run by run
                    for name, (cmd, _count) in tools.items():
                        if name in stopped:
                            continue
                        result = run(cmd(root), root, args.cap)
                        if result is None:
                            stopped.add(name)
                            results[name] = []
                        else:
                            results[name].append(result)
                for name, (_cmd, count) in tools.items():
                    label = f"{shape:<10} {len(text) / 1e6:>6.2f}MB {len(planted):>7}  {name:<15}"
                    if not results[name]:
                        print(
                            f"{label} {'> ' + str(int(args.cap)):>8} (stopped, or stopped before)"
                        )
                        continue
                    wall = statistics.median(r[0] for r in results[name])
                    cpu = statistics.median(r[1] for r in results[name])
                    walls[name] = wall
                    n, hit = count(results[name][-1][2], planted)
                    print(f"{label} {wall:>8.2f} {cpu:>8.2f} {n:>8} {hit:>13}")
                if len(walls) == 2:
                    ratio = walls["detect-secrets"] / walls["replicator"]
                    print(f"{'':<36} detect-secrets / replicator (wall): {ratio:.1f}x")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
