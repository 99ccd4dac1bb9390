"""Evaluation: metrics and test-time augmentation, reports, Grad-CAM, model cards."""
