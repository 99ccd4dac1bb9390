"""Job folders: the on-disk contract between a training or search process and anyone watching it."""
