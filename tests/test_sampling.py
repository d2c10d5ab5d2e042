"""The block-shuffled order of training items: a permutation, blocks kept together, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from mirkd.errors import ConfigError
from mirkd.training.sampling import BlockShuffleSampler, block_shuffled


@pytest.mark.parametrize(("n_items", "block"), [(10, 3), (12, 4), (7, 1), (5, 8), (0, 2)])
def test_block_shuffled_is_a_permutation_of_whole_blocks(n_items, block):
    order = block_shuffled(n_items, block, seed=3).tolist()
    assert sorted(order) == list(range(n_items))
    blocks = [i // block for i in order]
    runs = [b for k, b in enumerate(blocks) if k == 0 or b != blocks[k - 1]]
    assert len(runs) == len(set(runs))  # every block's items are consecutive in the order


def test_block_order_and_items_within_blocks_are_shuffled():
    orders = [block_shuffled(40, 8, seed).tolist() for seed in range(20)]
    block_orders = {tuple(dict.fromkeys(i // 8 for i in order)) for order in orders}
    first_blocks = {tuple(order[:8]) for order in orders}
    assert len(block_orders) > 10
    assert len(first_blocks) == 20  # the leading block's items in a new order every time


def test_block_of_one_is_a_uniform_shuffle():
    """Each of 4 items leads the order in about a quarter of 4000 seeds."""
    leaders = Counter(block_shuffled(4, 1, seed)[0].item() for seed in range(4000))
    assert sorted(leaders) == [0, 1, 2, 3]
    assert all(900 < count < 1100 for count in leaders.values()), leaders


def test_sampler_order_depends_on_seed_plus_epoch_only():
    sampler = BlockShuffleSampler(30, block=4, seed=5)
    epoch0 = list(sampler)
    assert list(sampler) == epoch0
    sampler.set_epoch(2)
    epoch2 = list(sampler)
    assert epoch2 != epoch0
    fresh = BlockShuffleSampler(30, block=4, seed=5)
    fresh.set_epoch(2)
    assert list(fresh) == epoch2 == block_shuffled(30, 4, seed=7).tolist()
    assert len(fresh) == 30


def test_sampler_rejects_an_empty_block():
    with pytest.raises(ConfigError, match="at least 1"):
        BlockShuffleSampler(10, block=0, seed=0)
