"""A fixture repository with planted secrets and decoys, shared by tests and the benchmark.

No secret is written literally in this file: every value is assembled at run time from a prefix
split in pieces and random characters, so that ``replicator release check`` passes on
replicator's own repository. Decoys (commit hashes, UUIDs, lock-file checksums, AWS's documented
example key, placeholders) must not be reported.
"""

from __future__ import annotations

import base64
import json
import random
import string
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
UPPER32 = string.ascii_uppercase + "234567"


@dataclass(frozen=True)
class Plant:
    kind: str
    file: str
    value: str
    in_history_only: bool = False

    @property
    def secret(self) -> str:
        """The part a scanner reports: the password of a URL, else the value itself."""
        if self.kind == "url-credentials":
            return self.value.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        return self.value


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem(rng: random.Random) -> str:
    body = [_r(rng, B64, 64) for _ in range(6)]
    head = "-----" + "BEGIN RSA " + "PRIVATE" + " KEY-----"
    tail = "-----" + "END RSA " + "PRIVATE" + " KEY-----"
    return "\n".join([head, *body, tail])


def make_secrets(seed: int) -> dict[str, tuple[str, str]]:
    """kind -> (variable name, value); a fresh set of values per seed."""
    rng = random.Random(seed)
    neptune_payload = json.dumps(
        {
            "api_address": "https://app.neptune.ai",
            "api_url": "https://app.neptune.ai",
            "api_key": str(uuid.UUID(int=rng.getrandbits(128))),
        },
        separators=(",", ":"),
    )
    slack_mid = f"{rng.randrange(10**9, 10**10)}-{rng.randrange(10**12, 10**13)}-"
    return {
        "wandb": ("wandb_api_key", _r(rng, HEX, 40)),
        "wandb-v1": ("WANDB_API_KEY", "wandb" + "_v1_" + _r(rng, ALNUM, 60)),
        "neptune": ("NEPTUNE_API_TOKEN", base64.b64encode(neptune_payload.encode()).decode()),
        "comet": ("comet_api_key", _r(rng, ALNUM, 25)),
        "huggingface": ("hf_token", "hf" + "_" + _r(rng, string.ascii_letters, 34)),
        "openai": (
            "openai_api_key",
            "sk" + "-" + _r(rng, ALNUM, 20) + "T3Blbk" + "FJ" + _r(rng, ALNUM, 20),
        ),
        "openai-project": ("OPENAI_API_KEY", "sk" + "-proj-" + _r(rng, URLSAFE, 120)),
        "aws-key-id": ("aws_access_key_id", "AK" + "IA" + _r(rng, UPPER32, 16)),
        "aws-secret": ("aws_secret_access_key", _r(rng, B64, 40)),
        "github": ("github_token", "gh" + "p_" + _r(rng, ALNUM, 36)),
        "github-pat": (
            "GH_PAT",
            "github" + "_pat_" + _r(rng, ALNUM, 22) + "_" + _r(rng, ALNUM, 59),
        ),
        "google": ("google_api_key", "AI" + "za" + _r(rng, URLSAFE, 35)),
        "slack-bot": ("slack_bot", "xo" + "xb-" + slack_mid + _r(rng, ALNUM, 24)),
        "slack-user": ("slack_user", "xo" + "xp-" + slack_mid + _r(rng, ALNUM, 32)),
        "generic-secret": ("client_secret", _r(rng, ALNUM, 32)),
        "generic-token": ("auth_token", _r(rng, HEX, 48)),
        "generic-password": ("db_password", _r(rng, ALNUM, 20)),
        "private-key": ("private_key", _pem(rng)),
        "url-credentials": (
            "database_url",
            "postgres://ml" + ":" + _r(rng, ALNUM, 14) + "@db.lab.internal:5432/runs",
        ),
    }


def _render(kind: str, fmt: str, name: str, value: str) -> list[str]:
    multi = "\n" in value
    if fmt == "py":
        return [f'{name} = """{value}"""'] if multi else [f'{name} = "{value}"']
    if fmt == "yaml":
        if multi:
            return [f"{name}: |", *("  " + v for v in value.splitlines())]
        return [f"{name}: {value}"]
    if fmt == "json":
        return [f"  {json.dumps(name)}: {json.dumps(value)},"]
    if fmt == "toml":
        return [f'{name} = """', *value.splitlines(), '"""'] if multi else [f'{name} = "{value}"']
    if fmt == "sh":
        if multi:
            return ["cat > key.pem <<'EOF'", *value.splitlines(), "EOF"]
        return [f"export {name.upper()}={value}"]
    if fmt == "out":
        return value.splitlines() if multi else [f"{name}: {value}"]
    raise ValueError(fmt)


def _notebook(cells: list[tuple[str, list[str] | None]]) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for number, (source, output) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source)
        if output is not None:
            cell.execution_count = number
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text="\n".join(output) + "\n")
            ]
        nb.cells.append(cell)
    return nbformat.writes(nb)


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=Fixture", "-c", "user.email=fixture@example.org", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


DECOY_FILES = (
    "src/decoys.py",
    "configs/decoys.yaml",
    "poetry.lock",
    "uv.lock",
    "package-lock.json",
    "requirements.txt",
    "dvc.lock",
    "docs/aws.md",
    "notebooks/decoys.ipynb",
    "SHA256SUMS",
)


def build_fixture(root: Path) -> tuple[list[Plant], list[str]]:
    """Create the fixture repository at ``root``; returns (plants, decoy values)."""
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    plants: list[Plant] = []

    # Commit 1: a file with every kind of secret, later deleted (found only with --history).
    old = make_secrets(100)
    lines = []
    for kind, (name, value) in old.items():
        lines += _render(kind, "py", name, value)
        plants.append(Plant(kind, "scripts/old_train.py", value, in_history_only=True))
    (root / "scripts").mkdir()
    (root / "scripts/old_train.py").write_text("\n".join(lines) + "\n")
    (root / "README.md").write_text("# fixture\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    first_commit = _git(root, "rev-parse", "HEAD")
    (root / "scripts/old_train.py").unlink()

    files = {
        "src/config_secrets.py": "py",
        "configs/secrets.yaml": "yaml",
        "configs/secrets.json": "json",
        "configs/secrets.toml": "toml",
        "scripts/launch.sh": "sh",
    }
    for seed, (rel, fmt) in enumerate(files.items(), start=1):
        secrets = make_secrets(seed)
        body: list[str] = ["{"] if fmt == "json" else []
        for kind, (name, value) in secrets.items():
            body += _render(kind, fmt, name, value)
            plants.append(Plant(kind, rel, value))
        if fmt == "json":
            body.append('  "end": true')
            body.append("}")
        if fmt == "sh":
            wandb_key = make_secrets(50)["wandb"][1]
            body.append(f"wandb login {wandb_key}")
            plants.append(Plant("wandb", rel, wandb_key))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(body) + "\n")

    # Notebooks: secrets in cell sources, and in outputs only (the source prints them).
    src_secrets = make_secrets(20)
    source_cells = []
    for kind, (name, value) in src_secrets.items():
        source_cells.append(("\n".join(_render(kind, "py", name, value)), None))
        plants.append(Plant(kind, "notebooks/explore.ipynb", value))
    (root / "notebooks").mkdir()
    (root / "notebooks/explore.ipynb").write_text(_notebook(source_cells))
    out_secrets = make_secrets(21)
    output_cells = []
    for kind, (name, value) in out_secrets.items():
        output_cells.append(("import os\nprint(os.environ)", _render(kind, "out", name, value)))
        plants.append(Plant(kind, "notebooks/results.ipynb", value))
    (root / "notebooks/results.ipynb").write_text(_notebook(output_cells))

    # Credential files.
    cred = make_secrets(30)
    (root / ".env").write_text(f"HF_TOKEN={cred['huggingface'][1]}\n")
    (root / ".netrc").write_text(
        f"machine api.wandb.ai\n  login user\n  password {cred['wandb'][1]}\n"
    )
    (root / "kaggle.json").write_text(
        json.dumps({"username": "someone", "key": _r(random.Random(3), HEX, 32)})
    )
    (root / "id_rsa").write_text(cred["private-key"][1] + "\n")
    for rel in (".env", ".netrc", "kaggle.json", "id_rsa"):
        plants.append(Plant("credential-file", rel, ""))

    decoys = _write_decoys(root, first_commit)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "second")
    return plants, decoys


def _write_decoys(root: Path, commit: str) -> list[str]:
    rng = random.Random(7)
    run_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    key_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    sha256 = [_r(rng, HEX, 64) for _ in range(4)]
    md5 = _r(rng, HEX, 32)
    integrity = "sha512-" + base64.b64encode(rng.randbytes(64)).decode()
    aws_example_id = "AKIAIOSFODNN7EXAMPLE"
    aws_example_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    hf_placeholder = "hf" + "_" + "x" * 34
    decoys = [
        commit,
        run_uuid,
        key_uuid,
        *sha256,
        md5,
        integrity,
        aws_example_id,
        aws_example_secret,
        hf_placeholder,
    ]
    files = {
        "src/decoys.py": [
            f'GIT_COMMIT = "{commit}"',
            f'REVISION = "{commit}"  # the commit the results came from',
            f'run_id = "{run_uuid}"',
            f'idempotency_key = "{key_uuid}"',
            f'aws_access_key_id = "{aws_example_id}"',
            f'aws_secret_access_key = "{aws_example_secret}"',
            f'hf_token = "{hf_placeholder}"',
            'WANDB_API_KEY = os.environ["WANDB_API_KEY"]',
            'api_key = "<your-api-key>"',
            'DB_URL = "postgres://user:password@localhost:5432/db"',
            'DOC_URL = "https://alice:Xk2v9Lq3Rt8@example.com/private"',
            'CI_REPO = "https://oauth2:${CI_JOB_TOKEN}@gitlab.com/lab/project.git"',
            # a commit id is 40 hex characters like a W&B key: next to 'wandb' it is no key
            f'WANDB_RUN = "https://wandb.ai/lab/mlp/runs/3x9?commit={commit}"',
            f"# wandb run for commit {commit}",
            f'wandb.init(project="mlp", notes="trained at commit {commit}")',
            f'wandb.config.update({{"git_commit": "{commit}"}})',
            "tokenizer_name = 'bert-base-multilingual-uncased'",
            "max_tokens = 2048",
            f'checksum = "{sha256[0]}"',
        ],
        "configs/decoys.yaml": [
            f"git_commit: {commit}",
            f"wandb: {{project: mlp, git_sha: {commit}}}",
            f"run_id: {run_uuid}",
            "token: ${HF_TOKEN}",
            "tokenizer_path: models/bert-base-uncased/tokenizer",
            f"data_sha256: {sha256[1]}",
        ],
        "poetry.lock": [
            "[[package]]",
            'name = "numpy"',
            'version = "1.26.4"',
            f'files = [{{file = "numpy-1.26.4.whl", hash = "sha256:{sha256[2]}"}}]',
            f'content-hash = "{sha256[3]}"',
        ],
        "uv.lock": [
            f'sdist = {{ url = "https://files.example.org/numpy-1.26.4.tar.gz", hash = "sha256:{sha256[2]}" }}',
        ],
        "package-lock.json": [
            "{",
            f'  "integrity": "{integrity}",',
            f'  "resolved": "https://registry.example.org/x/-/x-1.0.0.tgz#{commit}"',
            "}",
        ],
        "requirements.txt": [
            f"numpy==1.26.4 --hash=sha256:{sha256[0]}",
            f"mylib @ git+https://github.com/org/mylib@{commit}",
        ],
        "dvc.lock": [
            "outs:",
            "- path: data",
            f"  md5: {md5}.dir",
            "  hash: md5",
        ],
        "docs/aws.md": [
            f"Use an access key such as `{aws_example_id}` and `{aws_example_secret}` (AWS documentation).",
        ],
        "SHA256SUMS": [f"{sha256[1]}  data.tar.gz"],
    }
    for rel, lines in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    (root / "notebooks/decoys.ipynb").write_text(
        _notebook(
            [
                ("!git rev-parse HEAD", [commit]),
                ("import uuid; uuid.uuid4()", [f"UUID('{run_uuid}')"]),
                ("!sha256sum data.tar.gz", [f"{sha256[1]}  data.tar.gz"]),
            ]
        )
    )
    return decoys
