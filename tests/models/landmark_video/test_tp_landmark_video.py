"""The landmark model at TP=2 equals TP=1 (two gloo ranks): the pose encoder's column/row conv pairs and the SPADE
modulations give the same landmarks, reconstruction, loss and gradients (training mode: instance norm and the
spectral-norm power iteration included), with foreground/background masks too, and with the LSGAN's replicated
discriminator (its loss parts and gradients); a TP=2 save is the TP=1 save."""

import copy

import pytest
import torch

from dist_utils import assert_close, assert_saves_match, expected_grad_shard, run_ranks

pytestmark = pytest.mark.slow



def _check(rank, group, fg_bg, tmp, gan=False):
    from adlr_hf import get_config
    from adlr_hf.models.landmark_video import LandmarkVideoModel
    from adlr_hf.parallel import apply_tp_plan, is_tensor_parallel

    torch.manual_seed(0)
    # float64: row-parallel sums add in another order, and instance norm / softmax amplify float32 rounding
    gan_fields = dict(use_gan=True, discriminator_filters=8, discriminator_layers=2) if gan else {}
    reference = LandmarkVideoModel(get_config("landmark-video-tiny", use_fg_bg_mask=fg_bg, **gan_fields)).double()
    what = f"fg_bg={fg_bg}, gan={gan}"
    model = copy.deepcopy(reference)
    apply_tp_plan(model, group)
    assert is_tensor_parallel(model)
    columns = [n for n, m in model.named_modules() if type(m).__name__ == "ColumnParallelConv2d"]
    rows = [n for n, m in model.named_modules() if type(m).__name__ == "RowParallelConv2d"]
    assert "pose_encoder.encoder.0.down.conv" in columns and "pose_encoder.encoder.3.refine.conv" in rows
    assert "decoder.up_4.norm_1.mlp_shared" in columns and "decoder.up_4.norm_1.mlp_gamma" in rows
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 2, 3, 64, 64, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64) * 2 - 1
    ref_out = reference(pixel_values_videos=frames, labels=target)
    out = model(pixel_values_videos=frames, labels=target)
    assert (ref_out.discriminator_loss is not None) == gan
    assert not any("discriminator" in n for n in columns + rows)  # the discriminator stays replicated
    for field in ("mu", "covariance", "reconstruction", "foreground_mask", "loss", "reconstruction_loss",
                  "generator_adversarial_loss", "discriminator_loss"):
        if getattr(ref_out, field) is not None:
            assert_close(getattr(out, field), getattr(ref_out, field).detach(), rtol=1e-9, atol=1e-9,
                         what=f"{field} ({what})")
    ref_out.loss.backward()
    out.loss.backward()
    ref_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        expected = expected_grad_shard(model, name, ref_params[name].grad, rank)
        assert_close(param.grad, expected, rtol=1e-8, atol=1e-10, what=f"grad of {name} ({what})")
    assert_saves_match(model, reference, f"{tmp}/fgbg{int(fg_bg)}gan{int(gan)}", rank, what)


def _worker(rank, tmp):
    from adlr_hf.parallel import init_parallel

    state = init_parallel(tp_size=2)
    for fg_bg in (False, True):
        _check(rank, state.tp_group, fg_bg, tmp)
    _check(rank, state.tp_group, False, tmp, gan=True)


def test_landmark_model_tp2_matches_tp1(tmp_path):
    run_ranks(_worker, str(tmp_path))
