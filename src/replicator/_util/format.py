"""Human-readable numbers shared by the commands (sizes in binary units)."""

from __future__ import annotations

__all__ = ["format_size"]


def format_size(n: float) -> str:
    """Bytes in binary units: ``4.0 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
