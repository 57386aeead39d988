"""Sweeps: grids, random and Optuna search, run by local, Slurm or Ray executors."""
