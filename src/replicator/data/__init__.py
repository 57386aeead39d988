"""Dataset fingerprints: fast, cached, DVC-compatible, with diffs (see docs/data.md).

fingerprint(path, algo="blake3")        -> Fingerprint (digest, size, nfiles, manifest)
diff(a, b)                              -> DataDiff (added, removed, modified, renamed)
verify(path, against="dvc.lock")        -> VerifyReport (match / differ / missing per entry)
fingerprint_datasets(data, store=...)   -> run.json "data" records
diff_recorded(a_data, b_data, store=...) -> DatasetChange per dataset name
"""

from __future__ import annotations

from .diff import (
    DataDiff,
    DatasetChange,
    diff,
    diff_fingerprints,
    diff_recorded,
    fingerprint_datasets,
    format_record,
)
from .digest import ALGORITHMS, Fingerprint, ManifestEntry
from .dvc import EntryCheck, VerifyReport, legacy_md5, read_dvc_file, verify
from .fingerprint import FingerprintError, fingerprint
from .manifest import load_manifest, manifest_path

__all__ = [
    "ALGORITHMS",
    "DataDiff",
    "DatasetChange",
    "EntryCheck",
    "Fingerprint",
    "FingerprintError",
    "ManifestEntry",
    "VerifyReport",
    "diff",
    "diff_fingerprints",
    "diff_recorded",
    "fingerprint",
    "fingerprint_datasets",
    "format_record",
    "legacy_md5",
    "load_manifest",
    "manifest_path",
    "read_dvc_file",
    "verify",
]
