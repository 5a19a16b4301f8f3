"""Evaluation: metric sets, per-slice metrics, confidence intervals, promotion gates."""
