"""Communication documents filled from the records: model cards, datasheets, the checklist.

``model_card(RUN_OR_EXPERIMENT)`` writes a Hugging Face model card with a ``model-index`` of
results aggregated over seeds; ``datasheet(PATH)`` a datasheet (Gebru et al.) pre-filled with the
data's fingerprint, counts, sizes and formats; ``checklist(EXPERIMENT)`` the ML Reproducibility
Checklist v2.0 answered where the records can answer it.
"""

from __future__ import annotations

from ._records import MetricSummary
from .checklist import Checklist, ChecklistItem, checklist
from .datasheet import Datasheet, datasheet
from .model import ModelCard, model_card

__all__ = [
    "Checklist",
    "ChecklistItem",
    "Datasheet",
    "MetricSummary",
    "ModelCard",
    "checklist",
    "datasheet",
    "model_card",
]
