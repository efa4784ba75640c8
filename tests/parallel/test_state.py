"""Process-group layout and the single-process path of init_parallel."""

import pytest

from adlr_hf.parallel import MegatronMPU, destroy_parallel, init_parallel
from adlr_hf.parallel.state import check_tp_size, dp_groups_for, tp_groups_for


def test_tp_groups_are_consecutive_and_dp_groups_strided():
    assert tp_groups_for(8, 2) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert dp_groups_for(8, 2) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert tp_groups_for(4, 4) == [[0, 1, 2, 3]] and dp_groups_for(4, 4) == [[0], [1], [2], [3]]


def test_tp_must_divide_the_world():
    with pytest.raises(ValueError, match=r"tp_size=3 does not divide the world size 4; choose one of \[1, 2, 4\]"):
        check_tp_size(3, 4)
    with pytest.raises(ValueError, match="tp_size=0 is not a positive integer"):
        check_tp_size(0, 4)


def test_single_process_state_and_mpu(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    destroy_parallel()
    try:
        with pytest.raises(ValueError, match="tp_size=2 does not divide the world size 1"):
            init_parallel(2)
        state = init_parallel(1)
        assert (state.tp_size, state.dp_size, state.tp_group) == (1, 1, None)
        mpu = MegatronMPU(state)
        assert mpu.get_model_parallel_world_size() == 1 and mpu.get_data_parallel_rank() == 0
        assert mpu.get_tensor_model_parallel_rank() == 0
    finally:
        destroy_parallel()
