"""Score a README on the ML Code Completeness Checklist (Papers with Code, NeurIPS 2019 analysis).

Five items, each passed or not with the evidence found in the README and in the repository:

1. dependencies: a requirements/environment/pyproject file, or install commands in the README;
2. training code: a training script, a script that recorded runs ran, or the command that trains;
3. evaluation code: an evaluation script, or the command that evaluates;
4. pre-trained models: a link or download command for trained weights;
5. results: a results table in the README with the commands that produce it (same section).

Only 9% of NeurIPS 2019 repositories had all five; the published analysis was annotated by hand.
The heuristics here are deliberately plain (file names, commands in code blocks, links, tables)
so that the evidence shown for each item is easy to check and to disagree with.

Files are judged as a clean clone has them: in a git work tree, the tracked files only (a model
file a run wrote, untracked, is not a published model). The scripts that the project's recorded
runs ran (run.json ``command``) count as training code when they are tracked, whatever their name
(``makemore.py``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ReplicatorError, UsageError

__all__ = [
    "README_NAMES",
    "ReadmeItem",
    "ReadmeScore",
    "find_readme",
    "recorded_scripts",
    "score_readme",
]

README_NAMES = ("README.md", "README.rst", "README.txt", "README", "readme.md", "Readme.md")

_DEP_FILES = re.compile(
    r"^(?:requirements[\w.\-]*\.(?:txt|in)|environment[\w.\-]*\.ya?ml|conda[\w.\-]*\.ya?ml|"
    r"pyproject\.toml|setup\.py|setup\.cfg|Pipfile(?:\.lock)?|poetry\.lock|uv\.lock|"
    r"Dockerfile|renv\.lock|DESCRIPTION|Project\.toml)$"
)
_DEP_CMD = re.compile(
    r"\b(?:pip3? install|uv (?:sync|pip install)|conda (?:env create|create|install)|"
    r"mamba (?:env create|install)|poetry install|pipenv install|docker (?:build|run|pull)|"
    r"requirements[\w.\-]*\.txt|environment\.ya?ml)",
    re.IGNORECASE,
)
_TRAIN_FILE = re.compile(
    r"(?:^|[_\-])(?:train|training|finetune|fine_tune|pretrain|fit)(?:[_\-]|$)", re.I
)
_EVAL_FILE = re.compile(
    r"(?:^|[_\-])(?:eval|evaluate|evaluation|test|inference|infer|predict|benchmark|score)"
    r"(?:[_\-]|$)",
    re.I,
)
_SCRIPT_SUFFIXES = (".py", ".sh", ".ipynb", ".r", ".jl", ".lua", ".m")
_TRAIN_CMD = re.compile(r"\b(?:train|training|finetune|fine-tune|pretrain|fit)\b", re.I)
_EVAL_CMD = re.compile(
    r"\b(?:eval|evaluate|evaluation|test\.py|inference|infer|predict|benchmark|--eval\w*)\b", re.I
)
_WEIGHT_HOSTS = re.compile(
    r"huggingface\.co/|hf\.co/|zenodo\.org|drive\.google\.com|dropbox\.com|figshare|"
    r"releases/download|onedrive|box\.com|osf\.io|"
    r"\.(?:pth|pt|ckpt|safetensors|h5|hdf5|onnx|pkl|npz|tar\.gz|zip)\b",
    re.I,
)
_WEIGHT_WORDS = re.compile(
    r"pre-?trained|checkpoints?|weights|model zoo|trained models?|download(?:ing)? (?:the )?model",
    re.I,
)
# The experiment tracker, not model weights: its sign-up link is no published model.
_WANDB_NAME = re.compile(r"weights\s*(?:&|&amp;|and)\s*biases", re.I)
_DOWNLOAD_CMD = re.compile(
    r"\b(?:wget|curl|gdown|huggingface-cli download|hf download|from_pretrained|"
    r"hf_hub_download|snapshot_download|torch\.hub\.load)\b",
    re.I,
)
_LINK = re.compile(r"https?://\S+|\]\([^)]+\)")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
_RST_TABLE = re.compile(r"^\s*(?:=+\s+){1,}=+\s*$|^\s*\+(?:-+\+){2,}\s*$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*%?")
_HEADING = re.compile(r"^(?:#{1,6}\s+\S|=+\s*$|-+\s*$)")
_COMMAND_LINE = re.compile(
    r"^\s*(?:\$\s+)?(?:python3?|bash|sh|sbatch|srun|torchrun|accelerate|deepspeed|make|"
    r"replicator|jupyter|papermill|\./|uv run|CUDA_VISIBLE_DEVICES)\b"
)


@dataclass(frozen=True)
class ReadmeItem:
    """One checklist item: passed or not, the evidence found, what to add when missing."""

    key: str
    title: str
    passed: bool
    evidence: tuple[str, ...]
    advice: str


@dataclass(frozen=True)
class ReadmeScore:
    """The five items and the score (0-5) of one README."""

    readme: Path | None
    items: tuple[ReadmeItem, ...]

    @property
    def score(self) -> int:
        return sum(item.passed for item in self.items)

    @property
    def missing(self) -> tuple[ReadmeItem, ...]:
        return tuple(item for item in self.items if not item.passed)

    def as_dict(self) -> dict[str, object]:
        return {
            "readme": str(self.readme) if self.readme else None,
            "score": self.score,
            "out_of": len(self.items),
            "items": [
                {
                    "key": i.key,
                    "title": i.title,
                    "passed": i.passed,
                    "evidence": list(i.evidence),
                    "advice": i.advice,
                }
                for i in self.items
            ],
        }


@dataclass(frozen=True)
class _Readme:
    name: str
    lines: list[str]
    code: list[tuple[int, str]]  # (line number, text) of lines inside code blocks or `$ ` lines
    sections: list[int]  # section id of each line (a heading starts a new section)
    headings: list[str]  # the heading of each line's section ("" before the first)


def find_readme(root: str | os.PathLike[str]) -> Path | None:
    """The README of a project directory, or None."""
    base = Path(root)
    for name in README_NAMES:
        if (base / name).is_file():
            return base / name
    return None


def _parse(path: Path | None) -> _Readme:
    if path is None:
        return _Readme("README", [], [], [], [])
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    code: list[tuple[int, str]] = []
    sections: list[int] = []
    headings: list[str] = []
    atx = path.suffix.lower() != ".rst"
    section = 0
    heading = ""
    fence: str | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        in_code = fence is not None or line.startswith(("    ", "\t"))
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif (
            fence is not None
            or stripped.startswith(("$ ", ".. code"))
            or line.startswith("    ")
            or _COMMAND_LINE.match(line)
        ):
            code.append((number, line))
        # `# ...` in a code block (fenced or indented, or anywhere in reStructuredText, whose
        # headings are underlined) is a shell or Python comment, not a heading
        if (
            atx
            and not in_code
            and fence is None
            and stripped.startswith("#")
            and _HEADING.match(stripped)
        ):
            section += 1
            heading = stripped
        elif (
            not in_code
            and fence is None
            and number > 1
            and len(stripped) >= 3
            and set(stripped) <= set("=-~^")
            and lines[number - 2].strip()
        ):
            section += 1  # an underlined (setext / rst) heading
            heading = lines[number - 2].strip()
        sections.append(section)
        headings.append(heading)
    return _Readme(path.name, lines, code, sections, headings)


def _quote(readme: _Readme, number: int, text: str) -> str:
    return f"{readme.name}:{number}: {text.strip()[:100]}"


def _files_matching(files: list[str], pattern: re.Pattern[str], *, scripts: bool) -> list[str]:
    out = []
    for f in files:
        p = PurePosixPath(f)
        if scripts and p.suffix.lower() not in _SCRIPT_SUFFIXES:
            continue
        parts = p.parts
        if scripts and ("tests" in parts[:-1] or p.name.startswith("test_")):
            continue  # unit tests are not evaluation code
        if pattern.search(p.stem if scripts else p.name):
            out.append(f)
    return out


def _dependencies(readme: _Readme, files: list[str]) -> ReadmeItem:
    evidence = [f"{f} in the repository" for f in files if _DEP_FILES.match(PurePosixPath(f).name)]
    evidence = evidence[:3]
    for number, line in enumerate(readme.lines, start=1):
        if _DEP_CMD.search(line):
            evidence.append(_quote(readme, number, line))
            break
    return ReadmeItem(
        "dependencies",
        "Specification of dependencies",
        bool(evidence),
        tuple(evidence),
        "Add a requirements.txt, environment.yml or pyproject.toml with pinned versions "
        "(`replicator env export`), and an Installation section with the install command.",
    )


def _script_of(command: Sequence[str], cwd: Path, root: Path) -> str | None:
    """The project file (POSIX, relative to ``root``) a recorded command ran, if any."""
    args = [str(a) for a in command]
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "-m":
            candidates = [arg.replace(".", "/") + ".py", arg.replace(".", "/") + "/__main__.py"]
        elif PurePosixPath(arg).suffix.lower() in _SCRIPT_SUFFIXES:
            candidates = [arg]
        else:
            continue
        for name in candidates:
            path = Path(name) if Path(name).is_absolute() else cwd / name
            try:
                return path.resolve().relative_to(root).as_posix()
            except (ValueError, OSError):
                continue
    return None


def recorded_scripts(root: str | os.PathLike[str]) -> Counter[str]:
    """The project's scripts that its recorded runs ran (run.json ``command``), with run counts."""
    from ..store import Store

    base = Path(root).resolve()
    found: Counter[str] = Counter()
    try:
        store = Store.open(base)
        if not store.runs_dir.is_dir():
            return found
        records = store.records()
    except (ReplicatorError, OSError, ValueError):  # a damaged store never stops the score
        return found
    for r in records:
        command = r.meta.get("command")
        if isinstance(command, list) and command:
            cwd = Path(str(r.meta.get("cwd") or base))
            script = _script_of(command, cwd, base)
            if script is not None:
                found[script] += 1
    return found


def _code_item(
    readme: _Readme,
    files: list[str],
    *,
    key: str,
    title: str,
    file_pattern: re.Pattern[str],
    cmd_pattern: re.Pattern[str],
    advice: str,
    ran: Counter[str] | None = None,
) -> ReadmeItem:
    evidence = [
        f"{f} in the repository" for f in _files_matching(files, file_pattern, scripts=True)
    ]
    present = set(files)
    for script, runs in (ran or Counter()).most_common():
        if script in present and f"{script} in the repository" not in evidence:
            evidence.append(f"{script} in the repository, run by {runs} recorded run(s)")
    evidence = evidence[:3]
    for number, line in readme.code:
        if cmd_pattern.search(line):
            evidence.append(_quote(readme, number, line))
            break
    return ReadmeItem(key, title, bool(evidence), tuple(evidence), advice)


def _pretrained(readme: _Readme, files: list[str]) -> ReadmeItem:
    """A link to hosted weights or a download command, next to words such as 'pretrained'.

    A link to a local document (``docs/checkpoints.md``) is not a published model.
    """
    evidence: list[str] = []
    for number, line in enumerate(readme.lines, start=1):
        heading = _WANDB_NAME.sub("W&B", readme.headings[number - 1])
        words = _WEIGHT_WORDS.search(_WANDB_NAME.sub("W&B", line)) or _WEIGHT_WORDS.search(heading)
        host = _WEIGHT_HOSTS.search(line) and _LINK.search(line)
        command = _DOWNLOAD_CMD.search(line)
        remote = "://" in line and _WEIGHT_WORDS.search(heading)
        if words and (host or command or remote):
            evidence.append(_quote(readme, number, line))
            break
    weights = [
        f
        for f in files
        if PurePosixPath(f).suffix.lower() in {".pt", ".pth", ".ckpt", ".safetensors", ".onnx"}
    ]
    if weights and not evidence:
        evidence.append(f"{weights[0]} in the repository (not linked from the README)")
    return ReadmeItem(
        "pretrained",
        "Pre-trained models",
        bool(evidence),
        tuple(evidence),
        "Publish the trained weights (Hugging Face Hub, Zenodo, a GitHub release) and link them "
        "from a 'Pre-trained models' section with the command that downloads and loads them.",
    )


def _results(readme: _Readme) -> ReadmeItem:
    tables: list[int] = []
    lines = readme.lines
    for i, line in enumerate(lines):
        if _TABLE_SEP.match(line) and i > 0 and "|" in lines[i - 1]:
            body = lines[i + 1 : i + 6]
            if any(_NUMBER.search(row) for row in body if "|" in row):
                tables.append(i)  # 0-based index of the separator row
        elif "<table" in line.lower() or (_RST_TABLE.match(line) and i + 2 < len(lines)):
            tables.append(i)
    evidence: list[str] = []
    passed = False
    code_by_section: dict[int, tuple[int, str]] = {}
    for number, text in readme.code:
        if text.strip() and not text.strip().startswith(("```", "~~~", "#")):  # '#': a comment
            code_by_section.setdefault(readme.sections[number - 1], (number, text))
    for i in tables:
        evidence.append(f"{readme.name}:{i}: results table")
        command = code_by_section.get(readme.sections[i])
        if command:
            evidence.append(_quote(readme, *command) + " (command in the same section)")
            passed = True
            break
    if not tables and any(re.search(r"\bresults?\b", line, re.I) for line in lines):
        evidence.append(f"{readme.name}: mentions results but has no table")
    return ReadmeItem(
        "results",
        "Results table with the commands that produce it",
        passed,
        tuple(evidence),
        "Add a Results section with a table of the main numbers (with n and spread, e.g. "
        "`replicator report EXPERIMENT --format md`) and the exact commands that produce "
        "them in a code block in the same section.",
    )


def score_readme(
    readme: str | os.PathLike[str] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    files: list[str] | None = None,
) -> ReadmeScore:
    """Score ``readme`` (default: the README of ``root``) on the five completeness items.

    ``root`` defaults to the README's directory; ``files`` (paths relative to ``root``) default to
    the files a clean clone has: git's tracked files (every file outside git). The scripts that
    the project's recorded runs ran count as training code when they are among ``files``.
    """
    path = Path(readme) if readme is not None else None
    if path is not None and not path.is_file():
        raise UsageError(f"README {path} does not exist. Give the path of a README file.")
    base = Path(root) if root is not None else (path.parent if path else Path.cwd())
    if path is None:
        path = find_readme(base)
    if files is None:
        from .files import list_project_files

        project = list_project_files(base)
        files = (
            [f for f in project.files if f in project.tracked]
            if project.tracked is not None
            else list(project.files)
        )
    parsed = _parse(path)
    items = (
        _dependencies(parsed, files),
        _code_item(
            parsed,
            files,
            key="training",
            title="Training code",
            file_pattern=_TRAIN_FILE,
            cmd_pattern=_TRAIN_CMD,
            ran=recorded_scripts(base),
            advice="Include the training script (e.g. train.py) and show the exact command that "
            "trains each reported model, with its config and seed.",
        ),
        _code_item(
            parsed,
            files,
            key="evaluation",
            title="Evaluation code",
            file_pattern=_EVAL_FILE,
            cmd_pattern=_EVAL_CMD,
            advice="Include the evaluation script (e.g. eval.py) and the command that computes "
            "the reported metrics from a trained model.",
        ),
        _pretrained(parsed, files),
        _results(parsed),
    )
    return ReadmeScore(path, items)
