"""mirkd: chord recognizers trained from unlabeled audio by pseudo-labeling and selective KD."""

__version__ = "0.1.0"
