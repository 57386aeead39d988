"""Remote stores for a team: ``push`` and ``pull`` run directories, their snapshot refs and their
declared outputs and checkpoints (content-addressed by BLAKE3) through fsspec (S3, GCS, SSH, a
shared path), and :func:`list_remote` for ``replicator ls --remote``. The remote's layout is in
:mod:`replicator.remote.location`; ``docs/remote.md`` is the guide."""

from __future__ import annotations

from .listing import list_remote
from .location import Remote, open_remote
from .pulling import PullResult, pull
from .pushing import PushResult, push

__all__ = ["PullResult", "PushResult", "Remote", "list_remote", "open_remote", "pull", "push"]
