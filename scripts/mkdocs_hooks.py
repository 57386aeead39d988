"""mkdocs hook: our docstrings use Sphinx roles (``:func:`start```, ``:class:`~replicator.Run```),
which mkdocstrings renders as raw text (``:func:<code>start</code>``). Drop the role and, as
Sphinx does for ``~``, keep only the last component of the name."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):(<code>)(~?)([^<]*)(</code>)")


def _name(match: re.Match[str]) -> str:
    opening, tilde, name, closing = match.groups()
    if tilde:
        name = name.rsplit(".", 1)[-1]
    return f"{opening}{name}{closing}"


def on_post_page(output: str, **_: Any) -> str:
    """Strip the Sphinx role prefixes from the rendered page."""
    return _ROLE.sub(_name, output)
