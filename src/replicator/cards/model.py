"""Model cards in the Hugging Face layout, filled from run records.

The YAML front matter holds a ``model-index`` (name; results with task, dataset and metrics of
``type``/``value``) whose values are means over the runs' seeds; the metric ``name`` says n and
the SD, since the model-index schema has no field for spread. The body follows the Hugging Face
model card template: what the records know (training config, seeds, data fingerprints, hardware,
software, compute time, results with n and spread, how to re-run) is filled in, everything else
is marked ``[To be written by the author]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..store import StoreLike
from ._records import (
    TO_WRITE,
    MetricSummary,
    RunSet,
    dataset_text,
    format_duration,
    load_runs,
    software_text,
)

__all__ = ["ModelCard", "model_card"]

_KEY_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "transformers", "jax", "tensorflow")


@dataclass(frozen=True)
class ModelCard:
    """A rendered model card: ``text`` (Markdown with YAML front matter) and its ``metadata``."""

    text: str
    metadata: dict[str, Any]
    runs: tuple[str, ...]
    metrics: tuple[MetricSummary, ...]


def _config_value(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None and not isinstance(node, (dict, list)):
            return node
    return None


def _metadata(
    runs: RunSet,
    metrics: list[MetricSummary],
    *,
    name: str,
    task: str | None,
    dataset: str | None,
    license: str | None,
) -> dict[str, Any]:
    config = runs.records[0].config
    task_type = task or _config_value(config, "task", "task.type", "task.name") or "other"
    datasets = runs.datasets()
    dataset_name = (
        dataset
        or _config_value(config, "dataset", "dataset.name", "data.name")
        or (next(iter(datasets)) if datasets else None)
        or "unknown"
    )
    seeds = len(runs.records)
    results = []
    if metrics:
        results.append(
            {
                "task": {"type": str(task_type), "name": str(task_type)},
                "dataset": {"type": str(dataset_name), "name": str(dataset_name)},
                "metrics": [
                    {
                        "type": m.name,
                        "value": round(m.mean, 6),
                        "name": (
                            f"{m.name} (mean over n={m.n} seeds, SD {m.sd:.4g})"
                            if m.sd is not None
                            else f"{m.name} (one run, n=1)"
                        ),
                        "verified": False,
                    }
                    for m in metrics
                ],
            }
        )
    meta: dict[str, Any] = {}
    if license:
        meta["license"] = license
    meta["tags"] = ["replicator", f"seeds-{seeds}"]
    if dataset_name != "unknown":
        meta["datasets"] = [str(dataset_name)]
    if metrics:
        meta["metrics"] = [m.name for m in metrics]
    meta["model-index"] = [{"name": name, "results": results}]
    return meta


def _yaml(meta: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _results_table(metrics: list[MetricSummary]) -> list[str]:
    if not metrics:
        return ["No numeric metric in the runs' summary.json.", ""]
    lines = ["| metric | mean | SD | n | min | max |", "|---|---:|---:|---:|---:|---:|"]
    for m in metrics:
        sd = f"{m.sd:.4g}" if m.sd is not None else "-"
        lines.append(f"| {m.name} | {m.mean:.4g} | {sd} | {m.n} | {m.low:.4g} | {m.high:.4g} |")
    lines += [
        "",
        "Mean and sample standard deviation (ddof=1) over the runs' seeds; n is the number of "
        "runs that reported the metric. No interval is shown: with few seeds, report a t-interval "
        "(`replicator report`) rather than a bootstrap one.",
        "",
    ]
    return lines


def model_card(
    ref: str,
    *,
    store: StoreLike = None,
    name: str | None = None,
    task: str | None = None,
    dataset: str | None = None,
    license: str | None = None,
    group: Sequence[str] = (),
    config_hash: str | None = None,
) -> ModelCard:
    """A model card for a run (id, prefix, name) or an experiment (its completed runs).

    An experiment's runs count once per config and seed; when they ran several configs, the card
    describes one: ``group`` (``KEY=VALUE`` items) or ``config_hash``, else the config with the
    most seeds, and says which other configs exist.
    """
    runs = load_runs(ref, store=store, group=group, config_hash=config_hash)
    metrics = runs.metrics()
    model_name = name or runs.experiment
    meta = _metadata(runs, metrics, name=model_name, task=task, dataset=dataset, license=license)
    durations = runs.durations()
    hardware = runs.hardware()
    out = [
        *_front_matter(ref, runs, meta, model_name),
        *_model_details(runs, license),
        *_training_data(runs),
        *_training_procedure(runs, durations),
        "## Evaluation",
        "",
        "### Testing Data, Factors & Metrics",
        "",
        TO_WRITE,
        "",
        "### Results",
        "",
        *_results_table(metrics),
        *_environmental_impact(hardware, durations),
        *_technical_specifications(hardware, runs.first_file("environment.json")),
        *_closing(runs),
    ]
    return ModelCard("\n".join(out), meta, tuple(r.id for r in runs.records), tuple(metrics))


def _front_matter(ref: str, runs: RunSet, meta: dict[str, Any], model_name: str) -> list[str]:
    """The YAML metadata, the title, where the card came from and the summary to write."""
    out = ["---", _yaml(meta).rstrip(), "---", "", f"# Model Card for {model_name}", ""]
    scope = (
        f"run {runs.records[0].id}"
        if runs.single
        else f"{len(runs.records)} completed runs of experiment '{runs.experiment}'"
        + (f" with {runs.group}" if runs.group else "")
    )
    out += [f"<!-- Filled by `replicator card model {ref}` from {scope}. -->", ""]
    out += [line for note in runs.notes for line in (f"> **Note:** {note}", "")]
    index = meta["model-index"][0]["results"]
    if index and (index[0]["task"]["type"] == "other" or index[0]["dataset"]["type"] == "unknown"):
        out += [
            "<!-- The task or dataset of the model-index was not recorded: pass --task and "
            "--dataset, or put 'task:' and 'dataset:' in the config. -->",
            "",
        ]
    return [*out, TO_WRITE + " (one-paragraph summary of what the model does)", ""]


def _model_details(runs: RunSet, license: str | None) -> list[str]:
    """Model Details (sources from the code record), Uses, Risks, Get Started."""
    code = runs.records[0].meta.get("code") or {}
    return [
        "## Model Details",
        "",
        "### Model Description",
        "",
        f"- **Developed by:** {TO_WRITE}",
        f"- **Model type:** {TO_WRITE}",
        f"- **License:** {license or TO_WRITE}",
        f"- **Experiment:** {runs.experiment}; runs: {', '.join(r.id for r in runs.records)}",
        "",
        "### Model Sources",
        "",
        f"- **Repository:** {code.get('remote') or TO_WRITE}",
        f"- **Code version:** commit {code.get('commit') or 'unknown'}"
        + (" (with uncommitted changes, kept as a snapshot commit)" if code.get("dirty") else ""),
        f"- **Paper:** {TO_WRITE}",
        "",
        "## Uses",
        "",
        "### Direct Use",
        "",
        TO_WRITE,
        "",
        "### Out-of-Scope Use",
        "",
        TO_WRITE,
        "",
        "## Bias, Risks, and Limitations",
        "",
        TO_WRITE,
        "",
        "## How to Get Started with the Model",
        "",
        TO_WRITE + " (code to load the trained weights)",
        "",
    ]


def _training_data(runs: RunSet) -> list[str]:
    out = ["## Training Details", "", "### Training Data", ""]
    datasets = runs.datasets()
    if not datasets:
        return [*out, f"{TO_WRITE} (no dataset fingerprint was recorded with the runs)", ""]
    for dname, record in datasets.items():
        out.append(
            f"- **{dname}**: `{record.get('path')}`, {dataset_text(record)}, "
            f"fingerprint `{record.get('algo')}:{record.get('digest')}`"
        )
    return [*out, "", f"{TO_WRITE} (where the data comes from; link its datasheet)", ""]


def _training_procedure(runs: RunSet, durations: list[float]) -> list[str]:
    """The config (seed left out), seeds, command and run times."""
    first = runs.records[0]
    config = {k: v for k, v in first.config.items() if k != "seed"}
    out = ["### Training Procedure", "", "#### Training Hyperparameters", ""]
    if config:
        out += ["```yaml", _yaml(config).rstrip(), "```", ""]
    else:
        out += ["No config was recorded.", ""]
    seeds = runs.seeds
    out += [f"- **Seeds:** {', '.join(str(s) for s in seeds) or 'not recorded'} (n={len(seeds)})"]
    command = first.meta.get("command")
    if command:
        out.append(f"- **Command:** `{' '.join(str(c) for c in command)}`")
    out += ["", "#### Speeds, Sizes, Times", ""]
    if durations:
        total = sum(durations)
        out.append(
            f"- Wall-clock time per run: mean {format_duration(total / len(durations))} over "
            f"{len(durations)} run(s); total {format_duration(total)}"
        )
    else:
        out.append("- Run durations were not recorded.")
    return [*out, ""]


def _environmental_impact(hw: list[str], durations: list[float]) -> list[str]:
    gpus = [h[5:] for h in hw if h.startswith("GPU:") and "none" not in h]
    cpus = [h[5:] for h in hw if h.startswith("CPU:")]
    hardware_type = (gpus or cpus or [TO_WRITE])[0]
    hours = sum(durations) / 3600 if durations else None
    return [
        "## Environmental Impact",
        "",
        f"- **Hardware Type:** {hardware_type}",
        f"- **Hours used:** {f'{hours:.2f} (wall-clock, all runs)' if hours is not None else TO_WRITE}",
        f"- **Cloud Provider:** {TO_WRITE}",
        f"- **Compute Region:** {TO_WRITE}",
        f"- **Carbon Emitted:** {TO_WRITE} (e.g. the ML CO2 Impact calculator)",
        "",
    ]


def _technical_specifications(hw: list[str], environment: dict[str, Any]) -> list[str]:
    out = [
        "## Technical Specifications",
        "",
        "### Model Architecture and Objective",
        "",
        TO_WRITE,
        "",
        "### Compute Infrastructure",
        "",
        "#### Hardware",
        "",
    ]
    out += [f"- {line}" for line in hw] or [f"- {TO_WRITE}"]
    out += ["", "#### Software", ""]
    sw = software_text(environment, packages=_KEY_PACKAGES)
    out += [f"- {line}" for line in sw] or [f"- {TO_WRITE}"]
    return out


def _closing(runs: RunSet) -> list[str]:
    """How to reproduce, and the parts only the author can write."""
    return [
        "",
        "## Reproducing",
        "",
        "```bash",
        *(f"replicator reproduce {r.id}" for r in runs.records[:3]),
        "```",
        "",
        "## Citation",
        "",
        TO_WRITE,
        "",
        "## Model Card Authors",
        "",
        TO_WRITE,
        "",
    ]
