"""Mirrors: forward a run's config, metrics and summary to the loggers users already run."""
