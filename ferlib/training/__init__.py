"""Training runs: config, schedule, callbacks, the training loop, averaging, snapshots, shipping."""
