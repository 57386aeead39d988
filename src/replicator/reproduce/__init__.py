"""Re-run a recorded run in a fresh worktree and environment, and say whether it reproduced.

reproduce(ref, env="fresh"|"current", rtol=, atol=, metrics=, outputs=, keep=) -> Reproduction
format_verdict(reproduction)                                        -> text lines
write_ci_workflow(run, root=...)                                    -> .github/workflows/...
"""

from __future__ import annotations

from ..errors import ReproduceError
from .checkout import Checkout, checkout_code, checkout_commit
from .ci import WORKFLOW_PATH, ci_workflow, write_ci_workflow
from .compare import (
    Check,
    compare_checkpoints,
    compare_histories,
    compare_outputs,
    compare_summaries,
    compare_values,
    decision,
    verdict_of,
)
from .core import Reproduction, StageResult, format_verdict, reproduce
from .fresh_env import FreshEnv, build_fresh_env, find_uv
from .stages import STAGES

__all__ = [
    "STAGES",
    "WORKFLOW_PATH",
    "Check",
    "Checkout",
    "FreshEnv",
    "ReproduceError",
    "Reproduction",
    "StageResult",
    "build_fresh_env",
    "checkout_code",
    "checkout_commit",
    "ci_workflow",
    "compare_checkpoints",
    "compare_histories",
    "compare_outputs",
    "compare_summaries",
    "compare_values",
    "decision",
    "find_uv",
    "format_verdict",
    "reproduce",
    "verdict_of",
    "write_ci_workflow",
]
