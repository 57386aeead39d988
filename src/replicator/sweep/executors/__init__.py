"""Sweep executors: one interface (:mod:`.base`), one module per engine, imported on use."""

from .base import EXECUTORS, Executor, Job, JobResult, JobState, Resources, get_executor

__all__ = ["EXECUTORS", "Executor", "Job", "JobResult", "JobState", "Resources", "get_executor"]
