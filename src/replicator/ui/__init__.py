"""replicator ui: a local, read-only web app over the store (``replicator ui``; docs/ui.md).

:func:`create_app` makes the ASGI app (Starlette, the ``ui`` extra) that serves the page shells
under ``ui/static/`` and the JSON API of :mod:`replicator.ui.api`; the command binds it with
uvicorn and prints its URL.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
