"""Training: window datasets over the HDF5 caches, losses, the training loop, validation scores."""
