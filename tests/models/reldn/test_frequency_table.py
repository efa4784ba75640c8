"""The semantic module's frequency table from a tiny triplet list, by hand."""

import math

import pytest
import torch

from adlr_hf.models.reldn import frequency_counts, frequency_table, overlapping_class_pairs

TRIPLETS = [(0, 1, 0), (0, 1, 0), (0, 1, 2), (1, 0, 1)]  # (subject class, object class, predicate)


def test_counts_put_background_in_column_zero_and_predicates_after():
    counts = frequency_counts(TRIPLETS, num_objects=2, num_predicates=3)
    assert counts.shape == (2, 2, 4)
    assert counts[0, 1].tolist() == [1, 2, 0, 1]  # background 0 + 1, predicate 0 twice, predicate 2 once
    assert counts[1, 0].tolist() == [1, 0, 1, 0]
    assert counts[0, 0].tolist() == [1, 0, 0, 0] and counts[1, 1].tolist() == [1, 0, 0, 0]
    with_background = frequency_counts(TRIPLETS, 2, 3, background_pairs=[(0, 1), (0, 1), (1, 1)])
    assert with_background[0, 1, 0] == 3 and with_background[1, 1, 0] == 2 and with_background[1, 0, 0] == 1


def test_table_is_the_log_of_the_empirical_distribution_plus_the_floor():
    table = frequency_table(TRIPLETS, num_objects=2, num_predicates=3)
    expected_01 = [math.log(p + 1e-3) for p in (0.25, 0.5, 0.0, 0.25)]
    torch.testing.assert_close(table[0, 1], torch.tensor(expected_01), rtol=0, atol=1e-6)
    torch.testing.assert_close(table[1, 1], torch.tensor([math.log(1 + 1e-3)] + [math.log(1e-3)] * 3), rtol=0,
                               atol=1e-6)
    assert table.dtype == torch.float32


def test_bad_ids_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="predicate 3"):
        frequency_table([(0, 1, 3)], num_objects=2, num_predicates=3)
    with pytest.raises(ValueError, match="object class 5"):
        frequency_table([(0, 5, 0)], num_objects=2, num_predicates=3)
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        frequency_table([(0, 1)], num_objects=2, num_predicates=3)


def test_overlapping_pairs_fall_back_to_all_pairs_when_none_overlap():
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 15], [50, 50, 60, 60]])
    labels = torch.tensor([3, 4, 5])
    assert sorted(map(tuple, overlapping_class_pairs(boxes, labels).tolist())) == [(3, 4), (4, 3)]
    apart = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    assert sorted(map(tuple, overlapping_class_pairs(apart, labels[:2]).tolist())) == [(3, 4), (4, 3)]
    assert overlapping_class_pairs(apart[:1], labels[:1]).shape == (0, 2)
