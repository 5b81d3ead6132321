"""Evaluation metrics: signal-level audio metrics, spatial metrics on FOA, retrieval metrics, and plots."""
