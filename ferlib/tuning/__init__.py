"""Hyperparameter search with keras-tuner: the search space, the tuner, its project folder."""
