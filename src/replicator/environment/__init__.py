"""A run's software environment: export it (requirements, conda, Docker, Apptainer, repo2docker),
compare it with another run's or with the current one, ranked by how likely a difference changes
numbers.

export_environment(run_dir, format=...)   -> EnvExport (files, problems found by syntax checks)
diff_run_environments(run_a, run_b)       -> EnvDiff (ranked differences)
check_environment(run_dir, python=None)   -> EnvDiff (recorded vs current interpreter)
requirements_from_environment(env)        -> [Requirement] (origins kept)
snapshot_editable_packages(packages, ...) -> packages with editable sources snapshotted
"""

from __future__ import annotations

from ..capture.editable import snapshot_editable_packages
from ..compare.environment import (
    RANKS,
    EnvDiff,
    EnvDifference,
    check_environment,
    diff_environments,
    diff_run_environments,
    format_env_diff,
)
from .export import (
    FORMATS,
    EnvExport,
    check_apptainer,
    check_dockerfile,
    check_export,
    export_environment,
    recorded_env_vars,
)
from .requirements import (
    Requirement,
    build_index,
    requirements_from_environment,
    requirements_text,
)

__all__ = [
    "FORMATS",
    "RANKS",
    "EnvDiff",
    "EnvDifference",
    "EnvExport",
    "Requirement",
    "build_index",
    "check_apptainer",
    "check_dockerfile",
    "check_environment",
    "check_export",
    "diff_environments",
    "diff_run_environments",
    "export_environment",
    "format_env_diff",
    "recorded_env_vars",
    "requirements_from_environment",
    "requirements_text",
    "snapshot_editable_packages",
]
