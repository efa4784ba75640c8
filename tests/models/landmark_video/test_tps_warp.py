"""The thin-plate-spline warp of the appearance branch: identity, exact interpolation of the control points, an
affine warp reproduced exactly, and the reference's random targets."""

import math

import torch

from adlr_hf.data.tps import TPSParams, random_tps_targets, tps_grid, tps_warp


def test_identity_control_points_give_the_frame_back():
    frames = torch.rand(2, 3, 24, 32)
    grid = tps_grid(24, 32, margin=4, points=4)
    torch.testing.assert_close(tps_warp(frames, grid, grid.clone()), frames, atol=1e-5, rtol=0)


def test_the_spline_passes_through_every_control_point_and_is_affine_for_affine_moves():
    generator = torch.Generator().manual_seed(0)
    grid = tps_grid(64, 64)
    target = random_tps_targets(grid, generator)
    spline = TPSParams(grid, target)
    torch.testing.assert_close(spline(target), grid, atol=1e-8, rtol=0)
    # an affine move of the points: the spline is exactly that affine map everywhere (no bending)
    matrix = torch.tensor([[0.9, 0.2], [-0.1, 1.1]], dtype=torch.float64)
    moved = grid @ matrix.t() + torch.tensor([3.0, -2.0], dtype=torch.float64)
    spline = TPSParams(grid, moved)
    probe = torch.tensor([[5.5, 7.25], [40.0, 12.0], [63.0, 0.0]], dtype=torch.float64)
    expected = (probe - torch.tensor([3.0, -2.0], dtype=torch.float64)) @ torch.linalg.inv(matrix).t()
    torch.testing.assert_close(spline(probe), expected, atol=1e-8, rtol=0)


def test_a_dot_at_a_source_control_point_lands_at_its_target():
    height = width = 40
    source = tps_grid(height, width, margin=8, points=3)  # (8, 8) .. (32, 32) every 12 px
    target = source.clone()
    target[4] += torch.tensor([5.0, -3.0], dtype=torch.float64)  # move the centre point (20, 20) to (25, 17)
    frame = torch.zeros(1, height, width)
    frame[0, 20, 20] = 1.0  # row y = 20, column x = 20
    warped = tps_warp(frame, source, target)
    torch.testing.assert_close(warped[0, 17, 25], torch.tensor(1.0), atol=1e-5, rtol=0)
    assert int(warped[0].argmax()) == 17 * width + 25
    # the fixed corner points stay where they were
    frame = torch.zeros(1, height, width)
    frame[0, 8, 8] = 1.0
    torch.testing.assert_close(tps_warp(frame, source, target)[0, 8, 8], torch.tensor(1.0), atol=1e-5, rtol=0)


def test_random_targets_follow_the_reference_ranges():
    grid = tps_grid(128, 128)
    assert grid.shape == (100, 2) and grid.min() == 10 and grid.max() == 118
    for seed in range(5):
        target = random_tps_targets(grid, torch.Generator().manual_seed(seed))
        # the centred grid is rotated by at most π/8 and scaled by at most 1.15, plus ±2 px per point
        spread = (target - target.mean(0)).norm(dim=1).max() / (grid - grid.mean(0)).norm(dim=1).max()
        assert 0.9 < spread < 1.15 * math.sqrt(2) + 0.05
        again = random_tps_targets(grid, torch.Generator().manual_seed(seed))
        assert torch.equal(target, again)
