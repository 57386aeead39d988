"""Bridges to training frameworks, each imported only when used (its framework is an extra).

* :mod:`replicator.integrations.lightning`: a PyTorch Lightning callback and checkpoint plugin
  (``pip install 'replicator[lightning]'``).
"""
