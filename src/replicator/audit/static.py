"""The static half of the determinism audit: known sources of nondeterminism found in the code.

An AST walk (never a regex, never an import of the user's code) over the Python files of a
project. Each :class:`Finding` names the file and line, what makes the result vary, and the fix.
The dynamic half (controlled re-runs) says which findings it confirmed.

Rules (``code``: what it finds):

``clock-seed``         a seed computed from the clock, the pid, ``os.urandom`` or ``uuid``
``unseeded-rng``       ``np.random.default_rng()``, ``random.Random()``, ``RandomState()``,
                       ``SeedSequence()``, ``torch.Generator()`` never given a seed
``set-order``          iteration over a set (its order of strings depends on ``PYTHONHASHSEED``)
``sort-by-id``         ``sorted(..., key=id)``: the order of memory addresses
``unsorted-listing``   ``os.listdir``, ``os.scandir``, ``os.walk``, ``glob``, ``Path.glob``,
                       ``Path.iterdir`` not passed through ``sorted``: the filesystem's order
``as-completed``       results taken in completion order (``as_completed``, ``imap_unordered``)
``cudnn-benchmark``    ``torch.backends.cudnn.benchmark = True``: kernels chosen by timing
``cuda-atomic-op``     ops without a deterministic CUDA kernel by default (``index_add_``,
                       ``scatter_add_``, ``bincount``, ``index_put_(accumulate=True)``, ...)
``dataloader-workers`` a DataLoader with workers and no ``worker_init_fn``/``generator``
``wall-clock-loop``    a loop bounded by elapsed time: the number of steps depends on speed
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["RULES", "Finding", "imported_modules", "scan_file", "scan_paths"]

RULES: dict[str, str] = {
    "clock-seed": "seed from a clock, pid or OS entropy: every run gets another seed",
    "unseeded-rng": "random generator created without a seed",
    "set-order": "iteration over a set: the order of strings changes with PYTHONHASHSEED",
    "sort-by-id": "sorted by id(): the order of memory addresses",
    "unsorted-listing": "directory listing in the filesystem's order",
    "as-completed": "results accumulated in completion order",
    "cudnn-benchmark": "cuDNN picks kernels by timing them",
    "cuda-atomic-op": "op with no deterministic CUDA kernel by default (atomic adds)",
    "dataloader-workers": "DataLoader workers without worker_init_fn or generator",
    "wall-clock-loop": "loop bounded by elapsed time",
}
"""Rule code -> what it finds."""

_FIXES: dict[str, str] = {
    "clock-seed": "use the run's seed (run.seed, or --seed/{seed} on the command line)",
    "unseeded-rng": "pass the run's seed: np.random.default_rng(run.seed), "
    "random.Random(run.seed), torch.Generator().manual_seed(run.seed)",
    "set-order": "iterate over sorted(...) or keep a list/dict (insertion-ordered)",
    "sort-by-id": "sort by a stable key (a name, an index)",
    "unsorted-listing": "wrap the listing in sorted(...)",
    "as-completed": "collect results in submission order (executor.map, or index the futures)",
    "cudnn-benchmark": "set torch.backends.cudnn.benchmark = False "
    "(and cudnn.deterministic = True) or run with replicator run --deterministic",
    "cuda-atomic-op": "torch.use_deterministic_algorithms(True) (replicator run --deterministic) "
    "or a deterministic formulation (e.g. a sorted segment sum)",
    "dataloader-workers": "pass worker_init_fn=replicator.seed_worker and "
    "generator=torch.Generator().manual_seed(run.seed)",
    "wall-clock-loop": "bound the loop by a number of steps (--max-steps), not by time",
}

_CLOCKS = {
    "time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns",
    "now", "utcnow", "today", "getpid", "urandom", "uuid1", "uuid4", "token_bytes",
    "randbits", "default_timer",
}  # fmt: skip
_SEEDERS = {
    "seed", "manual_seed", "manual_seed_all", "set_seed", "seed_everything", "default_rng",
    "Random", "RandomState", "SeedSequence", "PRNGKey", "key", "Generator", "set_random_seed",
}  # fmt: skip
_UNSEEDED = {"default_rng", "Random", "RandomState", "SeedSequence"}
_GLOBAL_SEEDS = {"random.seed", "np.random.seed", "numpy.random.seed"}
_LISTINGS = {"listdir", "scandir", "walk", "glob", "iglob", "rglob", "iterdir"}
_COMPLETION = {"as_completed", "imap_unordered"}
_ATOMIC_OPS = {
    "index_add_", "index_add", "scatter_add_", "scatter_add", "scatter_reduce_",
    "scatter_reduce", "bincount", "histc", "index_put_", "put_", "embedding_bag",
    "ctc_loss", "nll_loss2d", "grid_sample", "kthvalue", "median",
}  # fmt: skip
_ORDER_FREE = {"sorted", "set", "frozenset", "len", "max", "min", "any", "all", "bool"}


@dataclass(frozen=True)
class Finding:
    """One source of nondeterminism: where, which rule, what and the fix.

    ``confirmed`` is set by the audit's controlled re-runs: True when changing the factor this
    finding depends on changed the result, False when it did not, None when not tested.
    """

    path: str
    line: int
    code: str
    message: str
    fix: str
    confirmed: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "where": self.where}


def _name(node: ast.AST) -> str | None:
    """The last name of a call target: ``np.random.default_rng`` -> ``default_rng``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_set_expr(node: ast.AST, set_names: set[str]) -> bool:
    if isinstance(node, (ast.Set, ast.SetComp)):
        return True
    if isinstance(node, ast.Call) and _name(node) in ("set", "frozenset"):
        return isinstance(node.func, ast.Name)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitOr, ast.BitAnd, ast.Sub)):
        return _is_set_expr(node.left, set_names) or _is_set_expr(node.right, set_names)
    return isinstance(node, ast.Name) and node.id in set_names


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        self.set_names: set[str] = set()
        self.seeded_names: set[str] = set()

    def add(self, node: ast.AST, code: str, detail: str) -> None:
        line = getattr(node, "lineno", 0)
        message = f"{RULES[code]}: {detail}" if detail else RULES[code]
        self.findings.append(Finding(self.path, line, code, message, _FIXES[code]))

    def prepare(self, tree: ast.AST) -> None:
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _is_set_expr(node.value, set()):
                self.set_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            # g = torch.Generator(); g.manual_seed(...): the generator is seeded after all
            if (
                isinstance(node, ast.Call)
                and _name(node) in ("manual_seed", "seed")
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
            ):
                self.seeded_names.add(node.func.value.id)

    def _wrapped(self, node: ast.AST, names: set[str]) -> bool:
        """Whether ``node`` is an argument (at any depth of calls) of a call named in ``names``."""
        current = node
        for _ in range(4):
            parent = self.parents.get(current)
            if parent is None:
                return False
            if isinstance(parent, ast.Call) and _name(parent) in names and current in parent.args:
                return True
            if not isinstance(parent, (ast.Call, ast.Attribute, ast.Starred)):
                return False
            current = parent
        return False

    # --- calls -------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        name = _name(node)
        if name in _SEEDERS:
            self._seed_call(node, name)
        if name in ("sorted", "sort") and any(
            k.arg == "key" and isinstance(k.value, ast.Name) and k.value.id == "id"
            for k in node.keywords
        ):
            self.add(node, "sort-by-id", "key=id")
        if name in _LISTINGS and not self._wrapped(node, _ORDER_FREE):
            self._listing(node, name)
        if name in _COMPLETION:
            self.add(node, "as-completed", f"{name}()")
        if name in _ATOMIC_OPS and isinstance(node.func, ast.Attribute) and self._atomic(node):
            self.add(node, "cuda-atomic-op", f"{_dotted(node.func) or name}()")
        if name == "DataLoader":
            self._dataloader(node)
        if name in ("list", "tuple", "enumerate", "zip", "sum", "join") and any(
            _is_set_expr(a, self.set_names) for a in node.args
        ):
            self.add(node, "set-order", f"{name}() over a set")
        self.generic_visit(node)

    def _atomic(self, node: ast.Call) -> bool:
        if _name(node) != "index_put_":
            return True
        return any(k.arg == "accumulate" and not _false(k.value) for k in node.keywords)

    def _seed_call(self, node: ast.Call, name: str) -> None:
        args = [*node.args, *(k.value for k in node.keywords)]
        for arg in args:
            for inner in ast.walk(arg):
                if isinstance(inner, ast.Call) and _name(inner) in _CLOCKS:
                    self.add(node, "clock-seed", f"{name}({_dotted(inner.func)}())")
                    return
        dotted = _dotted(node.func)
        # an explicit None seeds from the OS too; torch.Generator(device=...) takes no seed
        seeds = [a for a in args if not (isinstance(a, ast.Constant) and a.value is None)]
        if name == "Generator":
            seeds = [*node.args, *(k.value for k in node.keywords if k.arg != "device")]
        if name in _UNSEEDED and not seeds:
            self.add(node, "unseeded-rng", f"{dotted}({'None' if args else ''})")
        elif name == "seed" and not seeds and dotted in _GLOBAL_SEEDS:
            self.add(node, "unseeded-rng", f"{dotted}() without a value seeds from the OS")
        elif name == "Generator" and not seeds and dotted.startswith("torch"):
            parent = self.parents.get(node)
            chained = isinstance(parent, ast.Attribute) and parent.attr == "manual_seed"
            named = isinstance(parent, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in self.seeded_names for t in parent.targets
            )
            if not chained and not named:
                self.add(node, "unseeded-rng", "torch.Generator() without manual_seed")

    def _listing(self, node: ast.Call, name: str) -> None:
        dotted = _dotted(node.func)
        if name in ("glob", "iglob") and not (dotted.startswith("glob") or "." in dotted):
            return
        if name == "walk" and not dotted.startswith("os"):
            return
        self.add(node, "unsorted-listing", f"{dotted or name}()")

    def _dataloader(self, node: ast.Call) -> None:
        given = {k.arg: k.value for k in node.keywords if k.arg}
        workers = given.get("num_workers")
        if workers is None or (isinstance(workers, ast.Constant) and workers.value == 0):
            return
        if "worker_init_fn" not in given and "generator" not in given:
            self.add(node, "dataloader-workers", "num_workers > 0")

    # --- statements -------------------------------------------------------------------------
    def visit_For(self, node: ast.For) -> None:
        if _is_set_expr(node.iter, self.set_names):
            self.add(node, "set-order", "for loop over a set")
        self._clock_break(node)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        # a set or dict built from a set has no order to lose
        parent = self.parents.get(node)
        if _is_set_expr(node.iter, self.set_names) and not isinstance(
            parent, (ast.SetComp, ast.DictComp)
        ):
            self.add(node.iter, "set-order", "comprehension over a set")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if (
                _dotted(target).endswith("cudnn.benchmark")
                and isinstance(node.value, ast.Constant)
                and node.value.value is True
            ):
                self.add(node, "cudnn-benchmark", "cudnn.benchmark = True")
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        clock = _clock_call(node.test)
        if clock is not None:
            self.add(node, "wall-clock-loop", f"while ... {clock}() ...")
        else:
            self._clock_break(node)
        self.generic_visit(node)

    def _clock_break(self, loop: ast.While | ast.For) -> None:
        """``while True: ... if time.time() - start > budget: break`` (or a for loop's)."""
        for stmt in ast.walk(loop):
            if isinstance(stmt, ast.If) and any(isinstance(b, ast.Break) for b in stmt.body):
                clock = _clock_call(stmt.test)
                if clock is not None:
                    self.add(stmt, "wall-clock-loop", f"break when {clock}() says time is up")
                    return


def _clock_call(node: ast.AST) -> str | None:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call) and _name(inner) in _CLOCKS - {"getpid", "urandom"}:
            return _dotted(inner.func)
    return None


def _false(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and not node.value


def scan_file(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> list[Finding]:
    """The findings of one Python file (an unparsable file has none)."""
    file = Path(path)
    try:
        source = file.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(source, filename=str(file))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return []
    shown = os.path.relpath(file, root) if root is not None else str(file)
    scanner = _Scanner(shown)
    scanner.prepare(tree)
    scanner.visit(tree)
    unique = {(f.line, f.code): f for f in scanner.findings}
    return sorted(unique.values(), key=lambda f: (f.line, f.code))


_SKIP_DIRS = {
    ".git", ".venv", "venv", ".replicator", "__pycache__", "node_modules", "site-packages",
    ".tox", ".nox", "build", "dist", "outputs", "multirun", "wandb", "mlruns", ".ipynb_checkpoints",
}  # fmt: skip


def _python_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    for given in paths:
        path = Path(given)
        if path.is_file() and path.suffix == ".py":
            yield path
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
                for name in sorted(files):
                    if name.endswith(".py"):
                        yield Path(folder) / name


def scan_paths(
    paths: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None
) -> list[Finding]:
    """Findings over Python files and folders (virtual environments and outputs skipped)."""
    out: list[Finding] = []
    for file in _python_files(paths):
        out += scan_file(file, root=root)
    return out


def imported_modules(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    """The top-level modules the Python files under ``paths`` import (``torch``, ``numpy``...)."""
    found: set[str] = set()
    for file in _python_files(paths):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
        except (OSError, SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found
