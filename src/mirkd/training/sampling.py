"""The order a training epoch visits dataset items in: a block-shuffled permutation.

Datasets list their windows track by track, so consecutive items sit next to each other on
disk. Shuffling blocks of ``block`` consecutive items (and the items inside each block) keeps
a batch's reads within a few regions of the files, which the page cache serves, while the
batches still mix many tracks. ``block=1`` is a plain uniform shuffle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from mirkd.errors import ConfigError


def block_shuffled(n_items: int, block: int, seed: int) -> torch.Tensor:
    """A permutation of ``0..n_items-1`` (int64) made from consecutive blocks of ``block``
    items: the blocks in random order, each block's items shuffled and kept together.

    Deterministic in ``seed``; the last block holds the remainder when ``block`` does not
    divide ``n_items``.
    """
    generator = torch.Generator().manual_seed(seed)
    block_rank = torch.randperm(math.ceil(n_items / block), generator=generator)
    shuffled = torch.argsort(torch.rand(n_items, generator=generator, dtype=torch.float64))
    # a stable sort by block rank keeps each block's items in their shuffled order
    return shuffled[torch.argsort(block_rank[shuffled // block], stable=True)]


class BlockShuffleSampler(Sampler[int]):
    """Dataset indices in a ``block_shuffled`` order that depends only on ``seed + epoch``.

    Call ``set_epoch`` before each epoch: a run resumed at epoch ``e`` then visits the items
    in exactly the order an uninterrupted run does, however many epochs it iterated before.
    """

    def __init__(self, n_items: int, block: int, seed: int) -> None:
        if block < 1:
            raise ConfigError(f"shuffle block must be at least 1 item, not {block}")
        self.n_items, self.block, self.seed = n_items, block, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The 0-based epoch whose order the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = block_shuffled(self.n_items, self.block, self.seed + self.epoch)
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.n_items
