"""The 28-d spatial feature against a hand computation (Detectron's +1 box convention, as the reference)."""

import math

import torch

from adlr_hf.models.reldn.boxes_reldn import SPATIAL_FEATURE_DIM, box_deltas, spatial_features, union_boxes


def test_spatial_feature_of_one_pair_matches_the_hand_computation():
    # subject 10×20 centred (5, 10); object 20×10 centred (20, 15); union [0, 0, 29, 19] 30×20 centred (15, 10)
    subject = torch.tensor([0.0, 0.0, 9.0, 19.0])
    obj = torch.tensor([10.0, 10.0, 29.0, 19.0])
    image = torch.tensor([40.0, 50.0])  # (height, width)
    expected = [
        1.5, 0.25, math.log(2), math.log(0.5), -0.75, -0.5,        # Δ(s, o) and o→s centre offsets
        1.0, 0.0, math.log(3), 0.0, -1 / 3, 0.0,                    # Δ(s, u)
        1 / 6, 0.25, math.log(2 / 3), math.log(0.5), -0.25, -0.5,  # Δ(u, o)
        0.0, 0.0, 9 / 50, 19 / 40, 200 / 2000,                      # box(s): x1/W, y1/H, x2/W, y2/H, area/(W·H)
        10 / 50, 10 / 40, 29 / 50, 19 / 40, 200 / 2000,             # box(o)
    ]
    feature = spatial_features(subject, obj, image)
    assert feature.shape == (SPATIAL_FEATURE_DIM,)
    torch.testing.assert_close(feature, torch.tensor(expected), rtol=0, atol=1e-6)


def test_spatial_features_are_elementwise_over_a_batch_of_pairs():
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(2, 5, 2, 2, generator=generator) * 100
    boxes = torch.cat([corners.amin(2), corners.amax(2)], dim=-1)
    sizes = torch.tensor([[120.0, 110.0], [90.0, 130.0]])
    batched = spatial_features(boxes[:, :4], boxes[:, 1:], sizes[:, None, :])
    assert batched.shape == (2, 4, 28)
    for b in range(2):
        for k in range(4):
            torch.testing.assert_close(batched[b, k], spatial_features(boxes[b, k], boxes[b, k + 1], sizes[b]))


def test_union_and_deltas_invert_each_other():
    a, b = torch.tensor([2.0, 3.0, 10.0, 7.0]), torch.tensor([5.0, 1.0, 20.0, 4.0])
    assert union_boxes(a, b).tolist() == [2.0, 1.0, 20.0, 7.0]
    assert box_deltas(a, a).abs().max() == 0
    # applying the deltas to a's centre and size gives b's
    dx, dy, dw, dh = box_deltas(a, b).tolist()
    wa, ha = 9.0, 5.0
    assert math.isclose(2 + 0.5 * wa + dx * wa, 5 + 0.5 * 16, abs_tol=1e-5)
    assert math.isclose(ha * math.exp(dh), 4.0, rel_tol=1e-6) and math.isclose(wa * math.exp(dw), 16.0, rel_tol=1e-6)
    assert math.isclose(3 + 0.5 * ha + dy * ha, 1 + 0.5 * 4, abs_tol=1e-6)
