"""Capture of what a run needs to be re-run: code (git), environment (packages) and hardware."""
