"""Estimators: one file per way of scoring an architecture (training, early stopping, weight sharing,
tabular lookup). All share the interface in `base.py`."""

from nasrun.estimators.base import Estimator, Evaluation

__all__ = ["Estimator", "Evaluation"]
