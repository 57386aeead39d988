"""readme score: READMEs written for the purpose, from empty to complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replicator.errors import UsageError
from replicator.release import score_readme

EMPTY = ""

TITLE_ONLY = """# A neural thing

We propose a neural thing that beats everything.
"""

INSTALL_ONLY = """# A neural thing

## Installation

```bash
pip install -r requirements.txt
```
"""

PARTIAL = """# A neural thing

## Installation

    conda env create -f environment.yml

## Training

```bash
python train.py --config configs/base.yaml --seed 0
```

## Results

| model | accuracy |
|-------|----------|
| ours  | 91.2     |
"""

COMPLETE = """# A neural thing

## Requirements

```bash
pip install -r requirements.txt
```

## Training

```bash
python train.py --config configs/base.yaml --seed 0
```

## Evaluation

```bash
python eval.py --checkpoint checkpoints/best.pt
```

## Pre-trained models

Download the pretrained weights from [Hugging Face](https://huggingface.co/someone/neural-thing):

```bash
huggingface-cli download someone/neural-thing --local-dir checkpoints
```

## Results

Test accuracy over 5 seeds (mean ± std):

| model    | CIFAR-10     | CIFAR-100    |
|----------|--------------|--------------|
| baseline | 88.1 ± 0.3   | 61.0 ± 0.5   |
| ours     | 91.2 ± 0.2   | 66.4 ± 0.4   |

Reproduce the table with:

```bash
replicator run -c configs/base.yaml --seeds 5 -- python train.py
replicator report base --metric test_acc --format markdown
```
"""


def _score(tmp_path: Path, text: str | None, files: tuple[str, ...] = ()):
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    if text is None:
        return score_readme(root=tmp_path)
    (tmp_path / "README.md").write_text(text)
    return score_readme(tmp_path / "README.md")


def _passed(score) -> dict[str, bool]:
    return {item.key: item.passed for item in score.items}


def test_no_readme_and_empty_readme_score_zero(tmp_path: Path) -> None:
    none = _score(tmp_path, None)
    assert none.readme is None and none.score == 0
    empty = _score(tmp_path, EMPTY)
    assert empty.score == 0 and len(empty.missing) == 5
    assert all(item.advice for item in empty.items)
    assert _score(tmp_path, TITLE_ONLY).score == 0


def test_install_section_gives_dependencies(tmp_path: Path) -> None:
    score = _score(tmp_path, INSTALL_ONLY)
    assert _passed(score) == {
        "dependencies": True,
        "training": False,
        "evaluation": False,
        "pretrained": False,
        "results": False,
    }
    assert score.items[0].evidence == ("README.md:6: pip install -r requirements.txt",)


def test_partial_readme_table_without_command(tmp_path: Path) -> None:
    score = _score(tmp_path, PARTIAL)
    assert _passed(score) == {
        "dependencies": True,
        "training": True,
        "evaluation": False,
        "pretrained": False,
        "results": False,
    }
    results = score.items[4]
    assert any("results table" in e for e in results.evidence)
    assert "commands" in results.advice


def test_repository_files_count_as_evidence(tmp_path: Path) -> None:
    score = _score(
        tmp_path,
        TITLE_ONLY,
        files=("requirements.txt", "scripts/train_cifar.py", "evaluate.py", "tests/test_model.py"),
    )
    assert _passed(score) == {
        "dependencies": True,
        "training": True,
        "evaluation": True,
        "pretrained": False,
        "results": False,
    }
    assert "evaluate.py in the repository" in score.items[2].evidence


def test_unit_tests_are_not_evaluation_code(tmp_path: Path) -> None:
    score = _score(tmp_path, TITLE_ONLY, files=("tests/test_model.py", "test_utils.py"))
    assert not _passed(score)["evaluation"]


def test_complete_readme_scores_five(tmp_path: Path) -> None:
    score = _score(tmp_path, COMPLETE)
    assert score.score == 5, [(i.key, i.evidence) for i in score.missing]
    assert score.missing == ()
    results = score.items[4]
    assert any("same section" in e for e in results.evidence)
    pretrained = score.items[3]
    assert "huggingface" in pretrained.evidence[0].lower()


def test_readme_cli(tmp_path: Path, run_cli) -> None:
    (tmp_path / "README.md").write_text(PARTIAL)
    code, out, _ = run_cli("readme", "score", str(tmp_path / "README.md"))
    assert code == 0
    assert "README.md: 2/5" in out and "[MISSING] Evaluation code" in out and "add:" in out
    code, out, _ = run_cli("readme", "score", str(tmp_path / "README.md"), "--json")
    assert json.loads(out)["score"] == 2
    assert run_cli("readme", "score", str(tmp_path / "README.md"), "--min-score", "3")[0] == 1
    assert run_cli("readme", "score", str(tmp_path / "nope.md"))[0] == 2
    with pytest.raises(UsageError, match="does not exist"):
        score_readme(tmp_path / "nope.md")


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("Checkpoints are described in [docs/checkpoints.md](docs/checkpoints.md).\n", False),
        ("We train for 10 epochs and keep the best checkpoint.\n", False),
        ("## Pretrained models\n\nGet them at https://zenodo.org/records/123\n", True),
        ("## Weights\n\n- [ResNet-50](https://example.org/files/resnet50.pth)\n", True),
        ('Load the pretrained model: `AutoModel.from_pretrained("lab/model")`\n', True),
        ("Download the checkpoint: `wget https://example.org/best.ckpt`\n", True),
    ],
)
def test_pretrained_models_need_a_published_link_or_command(
    tmp_path: Path, text: str, passed: bool
) -> None:
    assert _passed(_score(tmp_path, "# X\n\n" + text))["pretrained"] is passed


MAKEMORE = """\
import argparse
import pathlib

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
for step in range(args.steps):
    print(f"step {step} loss {1.0 / (step + 1):.4f}")
out = pathlib.Path("out")
out.mkdir(exist_ok=True)
(out / "model.pt").write_bytes(b"weights")
"""


def test_readme_score_judges_tracked_files_and_recorded_commands(repo: Path) -> None:
    """Issue 11.13: a model file a run wrote (untracked) is no published model, and the script
    the runs ran is the training code whatever its name."""
    from tests.conftest import git
    from tests.conftest import run_cli as real_cli

    (repo / "makemore.py").write_text(MAKEMORE)
    git(repo, "add", "makemore.py")
    git(repo, "commit", "-qm", "makemore")

    def items() -> dict[str, bool]:
        proc = real_cli("readme", "score", "README.md", "--json", cwd=repo)
        return {i["key"]: i["passed"] for i in json.loads(proc.stdout)["items"]}

    assert not any(items().values())  # a clean clone: 0/5
    proc = real_cli("run", "--seed", "1", "--", "python", "makemore.py", "--steps", "2", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "out" / "model.pt").is_file()
    after = items()
    assert after["pretrained"] is False  # out/model.pt is untracked: a clone would not have it
    assert after["training"] is True
    proc = real_cli("readme", "score", "README.md", "--json", cwd=repo)
    (training,) = [i for i in json.loads(proc.stdout)["items"] if i["key"] == "training"]
    assert training["evidence"] == ["makemore.py in the repository, run by 1 recorded run(s)"]

    # a script that was run but never committed is not training code a clone has
    (repo / "scratch.py").write_text("print('x')\n")
    proc = real_cli("run", "--seed", "1", "--", "python", "scratch.py", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = real_cli("readme", "score", "README.md", "--json", cwd=repo)
    (training,) = [i for i in json.loads(proc.stdout)["items"] if i["key"] == "training"]
    assert not any("scratch.py" in e for e in training["evidence"])


SIMCLR_README = """\
# SimCLR on CIFAR-10

Contrastive pretraining of a ResNet-18 encoder, then a linear probe.

## Installation

```bash
pip install -r requirements.txt
```

## Training

```bash
# the encoder's weights and checkpoints go to runs/<name>/ every 10 epochs
python train.py --config configs/simclr.yaml
```

Questions and bug reports: https://github.com/lab/simclr-cifar/issues

## Logging with Weights & Biases

Create a free account at https://wandb.ai/signup, then run `wandb login` once.

## Results

| method | linear probe top-1 |
|--------|--------------------|
| SimCLR | 90.1               |

    # all five seeds, then the table
    python train.py --config configs/simclr.yaml --seeds 5

## License

MIT License

Copyright (c) 2026 The SimCLR-CIFAR authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
"""


def _commit_readme(repo: Path, text: str) -> None:
    from tests.conftest import git

    (repo / "README.md").write_text(text)
    (repo / "requirements.txt").write_text("torch\n")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "readme")


@pytest.mark.parametrize(
    "cut",
    [
        # only the W&B section: 'Weights & Biases' is the tracker, not model weights
        ("# the encoder's weights", "# train the encoder"),
        # only the comment: `# ... weights ...` inside a code block is not a heading
        ("## Logging with Weights & Biases", "## Logging"),
    ],
)
def test_readme_score_reads_no_heading_in_code_and_no_weights_in_wandb(
    repo: Path, cut: tuple[str, str]
) -> None:
    """Issue 18.6: a sign-up link after a code comment or a W&B heading passed 'Pre-trained
    models'; the comment also split the results table from its command."""
    from tests.conftest import run_cli as real_cli

    _commit_readme(repo, SIMCLR_README.replace(*cut))
    proc = real_cli("readme", "score", "README.md", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    items = {i["key"]: i for i in json.loads(proc.stdout)["items"]}
    assert {k: i["passed"] for k, i in items.items()} == {
        "dependencies": True,
        "training": True,
        "evaluation": False,
        "pretrained": False,
        "results": True,
    }
    assert items["results"]["evidence"][-1].startswith("README.md:31: python train.py")

    # a real pretrained-weights section still passes
    _commit_readme(
        repo,
        SIMCLR_README.replace(cut[0], cut[1])
        + "\n## Pretrained weights\n\nThe encoder: https://zenodo.org/records/4242\n",
    )
    proc = real_cli("readme", "score", "README.md", "--json", cwd=repo)
    assert {i["key"]: i["passed"] for i in json.loads(proc.stdout)["items"]}["pretrained"]


def test_license_text_in_the_readme_is_no_missing_license(repo: Path) -> None:
    """Issue 18.6: the full MIT text in the README was told 'nobody may legally reuse the
    code'; it is a note that a LICENSE file is recommended. A README that only names a
    license it does not hold keeps the warning."""
    from tests.conftest import run_cli as real_cli

    _commit_readme(repo, SIMCLR_README)
    proc = real_cli("release", "check", "--no-formatting", "--json", cwd=repo)
    (lic,) = [f for f in json.loads(proc.stdout)["findings"] if f["rule"] == "license-missing"]
    assert lic["severity"] == "note"
    assert "MIT license text is in README.md" in lic["message"]
    assert "LICENSE file is recommended" in lic["message"]
    assert "legally" not in lic["message"]

    _commit_readme(repo, SIMCLR_README.split("MIT License")[0] + "MIT, see LICENSE.\n")
    proc = real_cli("release", "check", "--no-formatting", "--json", cwd=repo)
    (lic,) = [f for f in json.loads(proc.stdout)["findings"] if f["rule"] == "license-missing"]
    assert lic["severity"] == "warning" and "nobody may legally reuse" in lic["message"]
