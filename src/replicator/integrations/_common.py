"""What the framework bridges share: finding the run, and turning framework values into numbers
and plain JSON."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

__all__ = ["numbers", "plain", "the_run"]


def the_run(run: Any, who: str) -> Any:
    """``run`` if given, else the run open in this process; a UsageError naming ``who`` if none."""
    if run is not None:
        return run
    from ..record.run import active_run

    active = active_run()
    if active is None:
        raise UsageError(
            f"{who} needs a run: create it inside `with replicator.start(...) as run:` or pass "
            f"{who}(run)."
        )
    return active


def numbers(metrics: Any) -> dict[str, float]:
    """The entries of ``metrics`` that are one number (tensors of one element included)."""
    out = {}
    for key, value in dict(metrics or {}).items():
        if isinstance(value, bool) or value is None:
            continue
        if hasattr(value, "numel") and value.numel() != 1:
            continue
        if (
            hasattr(value, "size")
            and not hasattr(value, "numel")
            and getattr(value, "size", 1) != 1
        ):
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def plain(obj: Any) -> Any:
    """``obj`` as JSON: dicts, lists, numbers and strings kept, anything else as its repr."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), (str, int)):
        return obj.value  # an Enum (TrainingArguments' strategies)
    return repr(obj)
