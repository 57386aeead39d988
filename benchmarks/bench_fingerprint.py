"""Benchmark: dataset fingerprints versus the blake3 package, b3sum, md5sum, DVC and a hashlib loop.

Every pairing does the same work on both sides, command against command or library against
library, alternated in the same run, and reports the median of the same number of repeats:

1. One 1 GiB file (page cache warm): ``replicator.fingerprint`` (blake3, md5) versus the blake3
   package hashing the file in one call (``blake3(max_threads=AUTO).update_mmap``), ``b3sum``,
   ``md5sum`` and a plain hashlib md5 loop.
2. 20,000 files of 4 KiB, cold (page cache dropped with ``echo 3 > /proc/sys/vm/drop_caches``
   when permitted, no stat cache, no DVC state): ``replicator data fingerprint --algo md5``
   versus ``dvc add --no-commit`` (hashes and writes ``data.dvc``; plain ``dvc add`` also copies
   every file into DVC's cache, which fingerprinting does not).
3. The same files, warm re-check of an unchanged tree: ``replicator data fingerprint`` versus
   ``dvc status`` (commands; both pay interpreter start-up), and ``replicator.fingerprint``
   versus ``dvc.repo.Repo(...).status()`` (libraries, in this process).

Commands run with bytecode caches written (one untimed warm-up run each first), as any installed
package has them; every command's exit code is checked.

Usage::

    .venv-bench/bin/python benchmarks/bench_fingerprint.py            # data under /tmp
    .venv-bench/bin/python benchmarks/bench_fingerprint.py --quick    # 256 MiB and 5,000 files
    .venv-bench/bin/python benchmarks/bench_fingerprint.py --warm-only  # pairing 3 alone

Data is written under ``--dir`` (default /tmp/replicator-bench-fingerprint), never in the repo.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from replicator.data import fingerprint

PY = sys.executable
# PYTHONDONTWRITEBYTECODE off: both tools run from bytecode caches, as installed packages do.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "DVC_NO_ANALYTICS": "1",
}


def drop_caches() -> bool:
    """Drop the page cache (needs root); False when not permitted."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a command; a failing one raises with its output (never timed as a success)."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )


def median_of(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(times) for name, times in samples.items()}


def md5_loop(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            hashlib.md5(f.read()).hexdigest()


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


# --------------------------------------------------------------------------- 1. one big file
def bench_big(root: Path, size: int, repeat: int) -> list[tuple[str, float, str]]:
    big = root / "big.bin"
    if not big.is_file() or big.stat().st_size != size:
        with open(big, "wb") as f:
            for _ in range(size // (64 << 20)):
                f.write(os.urandom(64 << 20))
    # replicator memory-maps only files not modified in the last 5 s (a file still being
    # written could be truncated under the map); a dataset file is normally older than that.
    age = time.time() - big.stat().st_ctime
    if age < 6:
        time.sleep(6 - age)
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # warm page cache
    store = Path(tempfile.mkdtemp(prefix="store-", dir=root))

    def b3_package() -> None:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update_mmap(big)
        h.hexdigest()

    tools: dict[str, Callable[[], object]] = {
        "replicator blake3": lambda: fingerprint(big, store=store, use_cache=False),
        "blake3 package, one call (mmap, all cores)": b3_package,
        "replicator md5": lambda: fingerprint(big, algo="md5", store=store, use_cache=False),
        "hashlib md5 loop (1 MiB buffer)": lambda: md5_file(big),
        "md5sum": lambda: run(["md5sum", str(big)], root),
    }
    if shutil.which("b3sum"):
        tools["b3sum"] = lambda: run(["b3sum", str(big)], root)
    samples: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, fn in tools.items():  # interleaved, so load changes hit every tool alike
            samples[name].append(timed(fn))
    med = median_of(samples)
    ref = med["blake3 package, one call (mmap, all cores)"]
    rows = []
    for name, t in med.items():
        rows.append((name, t, f"{size / t / 2**30:.2f} GiB/s, {ref / t:.2f}x of blake3 pkg"))
    shutil.rmtree(store)
    return rows


# --------------------------------------------------------------------------- 2. many small files
def make_small(root: Path, nfiles: int) -> Path:
    repo = root / f"small-{nfiles}"
    data = repo / "data"
    if not ((repo / ".dvc").is_dir() and sum(1 for _ in data.rglob("*.bin")) == nfiles):
        shutil.rmtree(repo, ignore_errors=True)
        for i in range(nfiles):
            folder = data / f"d{i // 200:03d}"
            if i % 200 == 0:
                folder.mkdir(parents=True)
            (folder / f"f{i:05d}.bin").write_bytes(os.urandom(4096))
        run([PY, "-m", "dvc", "init", "--no-scm", "-q"], repo)
    return repo


def reset_dvc(repo: Path) -> None:
    for name in (".dvc/cache", ".dvc/tmp", "data.dvc"):
        p = repo / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    site = repo / ".site"
    shutil.rmtree(site, ignore_errors=True)


def bench_small(root: Path, nfiles: int, repeat: int) -> tuple[list[tuple[str, float, str]], bool]:
    repo = make_small(root, nfiles)
    data = repo / "data"
    paths = sorted(str(p) for p in data.rglob("*.bin"))
    time.sleep(2.5)  # let the files leave the racy window, as any existing dataset has
    dvc = [PY, "-m", "dvc"]
    env_dvc = {**ENV, "DVC_SITE_CACHE_DIR": str(repo / ".site")}
    dropped = drop_caches()

    def rep_cli(store: Path, algo: str) -> None:
        run(
            [PY, "-m", "replicator", "data", "fingerprint", str(data), "--algo", algo],
            repo,
            env={**ENV, "REPLICATOR_STORE": str(store)},
        )

    cold: dict[str, list[float]] = {}

    def keep(table: dict[str, list[float]], name: str, t: float) -> None:
        table.setdefault(name, []).append(t)

    # Warm-up, untimed: bytecode caches for both tools.
    warm_store = Path(tempfile.mkdtemp(prefix="store-warm-", dir=root))
    rep_cli(warm_store, "md5")
    run([*dvc, "--version"], repo, env_dvc)

    # --- cold: no stat cache, no DVC state, page cache dropped before each tool
    for _ in range(repeat):
        store = Path(tempfile.mkdtemp(prefix="store-cold-", dir=root))
        lib_store = Path(tempfile.mkdtemp(prefix="store-lib-", dir=root))
        reset_dvc(repo)
        drop_caches()
        keep(
            cold, "replicator data fingerprint --algo md5", timed(lambda s=store: rep_cli(s, "md5"))
        )
        drop_caches()
        keep(
            cold,
            "dvc add --no-commit",
            timed(lambda: run([*dvc, "add", "-q", "--no-commit", "data"], repo, env_dvc)),
        )
        drop_caches()
        keep(
            cold,
            "replicator.fingerprint(md5), in-process",
            timed(lambda s=lib_store: fingerprint(data, algo="md5", store=s)),
        )
        drop_caches()
        keep(cold, "serial hashlib md5 loop, in-process", timed(lambda: md5_loop(paths)))
        shutil.rmtree(store)
        shutil.rmtree(lib_store)
    # Both must agree with DVC: check once.
    import yaml

    dvc_md5 = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"]
    ours = fingerprint(data, algo="md5", store=root / "store-check").digest
    shutil.rmtree(root / "store-check", ignore_errors=True)
    assert ours == dvc_md5, (ours, dvc_md5)

    warm, startup = bench_warm(repo, root, repeat)
    shutil.rmtree(warm_store)
    return _rows(cold, warm, startup), dropped


def bench_warm(
    repo: Path, root: Path, repeat: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm re-check of an unchanged tree, every side alternated: (warm, start-up) samples.

    Set-up (untimed): `dvc add` commits the data, so that `dvc status` has a clean state to
    compare; replicator fingerprints it once per store (which also writes bytecode caches)."""
    from dvc.repo import Repo

    data = repo / "data"
    paths = sorted(str(p) for p in data.rglob("*.bin"))
    dvc = [PY, "-m", "dvc"]
    env_dvc = {**ENV, "DVC_SITE_CACHE_DIR": str(repo / ".site")}
    warm: dict[str, list[float]] = {}
    startup: dict[str, list[float]] = {}

    def keep(table: dict[str, list[float]], name: str, t: float) -> None:
        table.setdefault(name, []).append(t)

    def rep_cli(store: Path, algo: str) -> None:
        run(
            [PY, "-m", "replicator", "data", "fingerprint", str(data), "--algo", algo],
            repo,
            env={**ENV, "REPLICATOR_STORE": str(store)},
        )

    reset_dvc(repo)
    run([*dvc, "add", "-q", "data"], repo, env_dvc)
    stores = {a: Path(tempfile.mkdtemp(prefix=f"store-{a}-", dir=root)) for a in ("md5", "blake3")}
    lib_store = Path(tempfile.mkdtemp(prefix="store-lib-", dir=root))
    for algo, store in stores.items():
        rep_cli(store, algo)
    fingerprint(data, algo="md5", store=lib_store)
    os.environ["DVC_SITE_CACHE_DIR"] = env_dvc["DVC_SITE_CACHE_DIR"]

    def dvc_status_library() -> None:
        with Repo(str(repo)) as dvc_repo:
            changed = dvc_repo.status()
        assert not changed, changed  # the same answer the command gives: nothing changed

    for _ in range(repeat):
        keep(
            warm,
            "replicator data fingerprint --algo md5",
            timed(lambda: rep_cli(stores["md5"], "md5")),
        )
        keep(warm, "dvc status", timed(lambda: run([*dvc, "status", "-q"], repo, env_dvc)))
        keep(
            warm,
            "replicator data fingerprint (blake3)",
            timed(lambda: rep_cli(stores["blake3"], "blake3")),
        )
        keep(
            warm,
            "replicator.fingerprint(md5), in-process",
            timed(lambda s=lib_store: fingerprint(data, algo="md5", store=s)),
        )
        keep(warm, "dvc Repo.status(), in-process", timed(dvc_status_library))
        keep(warm, "serial hashlib md5 loop, in-process", timed(lambda: md5_loop(paths)))
        # Start-up alone, to read the command rows: interpreter plus imports.
        keep(
            startup,
            "python -m replicator --version",
            timed(lambda: run([PY, "-m", "replicator", "--version"], repo)),
        )
        keep(
            startup,
            "python -m dvc --version",
            timed(lambda: run([*dvc, "--version"], repo, env_dvc)),
        )
    for s in (*stores.values(), lib_store):
        shutil.rmtree(s)
    return warm, startup


def _rows(
    cold: dict[str, list[float]],
    warm: dict[str, list[float]],
    startup: dict[str, list[float]],
) -> list[tuple[str, float, str]]:
    pairs = {
        "replicator data fingerprint --algo md5": "dvc add --no-commit",
        "replicator.fingerprint(md5), in-process": "dvc add --no-commit",
        "serial hashlib md5 loop, in-process": "dvc add --no-commit",
    }
    warm_pairs = {
        "replicator data fingerprint --algo md5": "dvc status",
        "replicator data fingerprint (blake3)": "dvc status",
        "replicator.fingerprint(md5), in-process": "dvc Repo.status(), in-process",
        "serial hashlib md5 loop, in-process": "dvc Repo.status(), in-process",
    }
    rows = []
    for table, label, ratios in ((cold, "cold", pairs), (warm, "warm", warm_pairs)):
        if not table:
            continue
        med = median_of(table)
        for name, t in med.items():
            peer = ratios.get(name)
            note = f"{med[peer] / t:.1f}x faster than {peer}" if peer else "the peer"
            rows.append((f"{label}: {name}", t, note))
    for name, t in median_of(startup).items():
        rows.append((f"start-up: {name}", t, "included in every command row"))
    return rows


def bench_tree_row(root: Path, nfiles: int, repeat: int) -> None:
    """Warm re-fingerprint in-process: the stat cache's row for the whole tree against the rows
    per file (the path every warm run took before the tree row existed), alternated."""
    import sqlite3

    from replicator.data.cache import cache_path

    data = make_small(root, nfiles) / "data"
    time.sleep(2.5)
    store = Path(tempfile.mkdtemp(prefix="store-tree-", dir=root))
    first = fingerprint(data, algo="md5", store=store)
    samples: dict[str, list[float]] = {"tree row": [], "rows per file": []}
    for _ in range(repeat):
        samples["tree row"].append(timed(lambda: fingerprint(data, algo="md5", store=store)))
        with sqlite3.connect(cache_path(store)) as conn:
            conn.execute("DELETE FROM trees")
        samples["rows per file"].append(timed(lambda: fingerprint(data, algo="md5", store=store)))
    assert fingerprint(data, algo="md5", store=store) == first
    med = median_of(samples)
    print(f"\n## Warm re-fingerprint of {nfiles:,} files in-process (median of {repeat})\n")
    for name, t in med.items():
        print(f"| {name} | {t:.3f} s |")
    print(f"\nthe tree row is {med['rows per file'] / med['tree row']:.2f}x faster")
    shutil.rmtree(store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/replicator-bench-fingerprint")
    parser.add_argument("--quick", action="store_true", help="256 MiB and 5,000 files")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per tool (median)")
    parser.add_argument(
        "--tree-row",
        action="store_true",
        help="only: warm re-fingerprint with and without the stat cache's row per tree",
    )
    parser.add_argument(
        "--warm-only",
        action="store_true",
        help="only: the warm re-check of 20,000 unchanged files (commands and libraries)",
    )
    args = parser.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    size = (256 if args.quick else 1024) << 20
    nfiles = 5000 if args.quick else 20000

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, blake3 {blake3.__version__}")
    if args.tree_row:
        bench_tree_row(root, nfiles, args.repeat)
        return
    if args.warm_only:
        repo = make_small(root, nfiles)
        time.sleep(2.5)  # let the files leave the racy window, as any existing dataset has
        warm, startup = bench_warm(repo, root, args.repeat)
        print(f"\n## {nfiles:,} files of 4 KiB, warm re-check only (median of {args.repeat})\n")
        print("| run: tool | seconds | ratio |\n|---|---:|---|")
        for name, t, note in _rows({}, warm, startup):
            print(f"| {name} | {t:.3f} | {note} |")
        return
    big = bench_big(root, size, args.repeat)
    small, dropped = bench_small(root, nfiles, args.repeat)
    print(f"\n## One {size >> 20} MiB file, page cache warm (median of {args.repeat})\n")
    print("| tool | seconds | throughput, ratio |\n|---|---:|---|")
    for name, t, note in big:
        print(f"| {name} | {t:.3f} | {note} |")
    how = "page cache dropped before each tool" if dropped else "page cache NOT dropped (not root)"
    print(f"\n## {nfiles:,} files of 4 KiB (cold: {how}; median of {args.repeat})\n")
    print("| run: tool | seconds | ratio |\n|---|---:|---|")
    for name, t, note in small:
        print(f"| {name} | {t:.3f} | {note} |")


if __name__ == "__main__":
    main()
