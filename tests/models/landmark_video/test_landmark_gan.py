"""The landmark model's optional multi-scale LSGAN: the discriminator's score maps per scale, the LSGAN values, the
gradient split that lets one loss and one optimizer step train the model and the discriminator as the reference's two
Adam optimizers do, save / load, the model without GAN, bad config values, and a training run through the loop."""

import copy
import json

import pytest
import torch
from PIL import Image
from transformers import AutoModel

import adlr_hf  # noqa: F401 - registers the family
from adlr_hf.models.landmark_video import LandmarkVideoConfig, LandmarkVideoModel
from adlr_hf.models.landmark_video.discriminator_landmark_video import (
    MultiscaleDiscriminator,
    PatchDiscriminator,
    lsgan_loss,
    patch_output_size,
)
from adlr_hf.models.landmark_video.losses_landmark_video import reconstruction_loss
from adlr_hf.registry import get_config

SMALL_D = dict(use_gan=True, discriminator_filters=8, discriminator_layers=2)


def gan_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return LandmarkVideoModel(get_config("landmark-video-tiny", **{**SMALL_D, **overrides})).double()


def batch(seed=1, n=2):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, 2, 3, 64, 64, generator=g, dtype=torch.float64) * 2 - 1
    return frames, torch.rand(n, 3, 64, 64, generator=g, dtype=torch.float64) * 2 - 1


def is_d(name):
    return name.startswith("discriminator.")


# -- the discriminator -----------------------------------------------------------------------------------------------
def test_score_maps_per_scale_have_the_hand_computed_sizes():
    # 4x4 convs, padding 2: stride 2 maps n to n // 2 + 1, stride 1 to n + 1. Three stride-2 convs then two stride-1:
    # 64 -> 33 -> 17 -> 9 -> 10 -> 11 and 80 -> 41 -> 21 -> 11 -> 12 -> 13; the next scale sees 32x40, then 16x20.
    d = MultiscaleDiscriminator(3, filters=8, layers=3, scales=3)
    scores = d(torch.zeros(2, 3, 64, 80))
    assert [tuple(s.shape) for s in scores] == [(2, 1, 11, 13), (2, 1, 7, 8), (2, 1, 5, 6)]
    assert [patch_output_size(n, 3) for n in (64, 80, 32, 40, 16, 20)] == [11, 13, 7, 8, 5, 6]


def test_patch_discriminator_widths_double_up_to_512():
    widths = [(c.in_channels, c.out_channels, c.stride[0]) for c in PatchDiscriminator(3, 200, 3).convs]
    assert widths == [(3, 200, 2), (200, 400, 2), (400, 512, 2), (512, 512, 1), (512, 1, 1)]
    assert all(c.kernel_size == (4, 4) and c.padding == (2, 2) for c in PatchDiscriminator(3, 200, 3).convs)


def test_coarser_scale_judges_the_frame_average_pooled_without_padding():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(3, filters=4, layers=1, scales=2).double()
    seen = []
    d.scales[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    frames = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    d(frames)
    pooled = seen[0]
    assert pooled.shape == (1, 3, 4, 4)
    # the corner window covers 2x2 real pixels (padding not counted); an inner one 3x3 centred on pixel (2, 2)
    torch.testing.assert_close(pooled[0, :, 0, 0], frames[0, :, :2, :2].mean(dim=(1, 2)))
    torch.testing.assert_close(pooled[0, :, 1, 1], frames[0, :, 1:4, 1:4].mean(dim=(1, 2)))


def test_lsgan_loss_on_a_hand_computed_case():
    scores = [torch.tensor([[0.5, 2.0]]), torch.tensor([[-1.0]])]
    # real: mean((0.5-1)², (2-1)²) + (-1-1)² = 0.625 + 4; fake: mean(0.25, 4) + 1
    torch.testing.assert_close(lsgan_loss(scores, real=True), torch.tensor(4.625))
    torch.testing.assert_close(lsgan_loss(scores, real=False), torch.tensor(3.125))


def test_discriminator_convs_start_as_the_reference_initialises_them():
    torch.manual_seed(0)
    model = LandmarkVideoModel(get_config("landmark-video-tiny", **SMALL_D))
    conv = model.discriminator.scales[0].convs[1]
    assert torch.all(conv.bias == torch.tensor(0.1))
    bound = (6 / (conv.weight[0].numel() + conv.weight[:, 0].numel())) ** 0.5  # Xavier uniform
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound


# -- the gradient split ----------------------------------------------------------------------------------------------
def test_gradients_split_between_the_model_and_the_discriminator():
    model = gan_model(gan_weight=0.7)
    d_only, g_only = copy.deepcopy(model), copy.deepcopy(model)  # training forwards advance spectral-norm buffers
    frames, target = batch()
    out = model(pixel_values_videos=frames, labels=target)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.7 * out.generator_adversarial_loss
                               + out.discriminator_loss, rtol=1e-12, atol=0)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}

    # the discriminator's loss alone, fake and real in separate passes
    recon = d_only(pixel_values_videos=frames).reconstruction.detach()
    d_loss = 0.5 * (lsgan_loss(d_only.discriminator(recon), False) + lsgan_loss(d_only.discriminator(target), True))
    torch.testing.assert_close(out.discriminator_loss, d_loss, rtol=1e-12, atol=0)
    d_loss.backward()
    # the generator's loss alone, with the discriminator frozen
    g_only.discriminator.requires_grad_(False)
    recon = g_only(pixel_values_videos=frames).reconstruction
    g_adv = lsgan_loss(g_only.discriminator(recon), True)
    torch.testing.assert_close(out.generator_adversarial_loss, g_adv, rtol=1e-12, atol=0)
    (reconstruction_loss(recon, target, g_only.config) + 0.7 * g_adv).backward()

    expected = {n: p.grad if is_d(n) else g_only.get_parameter(n).grad for n, p in d_only.named_parameters()}
    for part in (is_d, lambda n: not is_d(n)):
        names = [n for n in expected if part(n)]
        # biases before instance norm have zero gradients up to rounding: tolerance relative to the part's largest
        scale = max(expected[n].abs().max() for n in names)
        assert scale > 1e-6
        for name in names:
            torch.testing.assert_close(grads[name], expected[name], rtol=1e-9, atol=1e-11 * scale,
                                       msg=f"grad of {name}")


def test_one_optimizer_step_equals_the_reference_two_adam_optimizers():
    lr = 1e-3
    ours = gan_model()
    reference, initial = copy.deepcopy(ours), copy.deepcopy(ours)
    # eps 1e-6: biases before instance norm have zero gradients up to rounding, which Adam's default eps (1e-8) would
    # turn into full steps of random sign on either side
    adam = dict(lr=lr, eps=1e-6)
    optimizer = torch.optim.Adam(ours.parameters(), **adam)
    opt_g = torch.optim.Adam([p for n, p in reference.named_parameters() if not is_d(n)], **adam)
    opt_d = torch.optim.Adam(reference.discriminator.parameters(), **adam)
    for step in range(3):
        frames, target = batch(seed=10 + step)
        optimizer.zero_grad()
        ours(pixel_values_videos=frames, labels=target).loss.backward()
        optimizer.step()
        # the reference's loop: G (reconstruction + adversarial) steps, then D on the same batch
        opt_g.zero_grad()
        recon = reference(pixel_values_videos=frames).reconstruction
        d = reference.discriminator
        loss_d = 0.5 * (lsgan_loss(d(recon.detach()), False) + lsgan_loss(d(target), True))
        (reconstruction_loss(recon, target, reference.config) + lsgan_loss(d(recon), True)).backward()
        opt_g.step()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
    after = dict(reference.named_parameters())
    for name, param in ours.named_parameters():  # steps are ~lr = 1e-3 per parameter
        torch.testing.assert_close(param, after[name], rtol=1e-9, atol=1e-10, msg=f"{name} after 3 steps")
    # every parameter moved, the discriminator's included
    assert all(not torch.equal(p, initial.get_parameter(n)) for n, p in ours.named_parameters())


# -- save / load, without GAN, eval mode -----------------------------------------------------------------------------
def test_save_and_load_keep_the_discriminator(tmp_path):
    model = gan_model().float()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["use_gan"] is True
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is LandmarkVideoModel and loaded.discriminator is not None
    saved = model.state_dict()
    keys = [k for k in loaded.state_dict() if is_d(k)]
    assert len(keys) == 2 * 4 * 2  # 2 scales x 4 convs (2 stride-2, 1 stride-1, the score conv) x (weight, bias)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_without_gan_there_is_no_discriminator_and_the_loss_is_the_reconstruction_loss():
    torch.manual_seed(0)
    plain = LandmarkVideoModel(get_config("landmark-video-tiny")).double()
    assert plain.discriminator is None and not any(is_d(k) for k in plain.state_dict())
    # the same seed builds the same model around the discriminator
    gan = gan_model()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in gan.state_dict().items() if not is_d(k))
    frames, target = batch()
    gan.eval(), plain.eval()
    with torch.no_grad():  # in eval mode the GAN model's loss is the plain model's
        torch.testing.assert_close(gan(pixel_values_videos=frames, labels=target).loss,
                                   plain(pixel_values_videos=frames, labels=target).loss, rtol=0, atol=0)
    out = plain.train()(pixel_values_videos=frames, labels=target)
    assert out.reconstruction_loss is None and out.generator_adversarial_loss is None
    assert out.discriminator_loss is None
    torch.testing.assert_close(out.loss, reconstruction_loss(out.reconstruction, target, plain.config), rtol=0, atol=0)


def test_eval_mode_and_missing_labels_do_not_run_the_discriminator():
    model = gan_model()
    calls = []
    model.discriminator.register_forward_pre_hook(lambda module, args: calls.append(1))
    frames, target = batch()
    assert model(pixel_values_videos=frames).loss is None and not calls
    model.eval()
    out = model(pixel_values_videos=frames, labels=target)
    assert not calls and out.reconstruction_loss is None and out.discriminator_loss is None
    torch.testing.assert_close(out.loss, reconstruction_loss(out.reconstruction, target, model.config), rtol=0, atol=0)


def test_partitioned_discriminator_parameters_get_one_clear_error():
    model = gan_model()
    frames, target = batch(n=1)
    # ZeRO stage 3 marks its partitioned parameters with `ds_tensor`; their detached copies would be empty
    model.discriminator.scales[0].convs[0].weight.ds_tensor = torch.empty(0)
    with pytest.raises(ValueError, match="ZeRO stage 3"):
        model(pixel_values_videos=frames, labels=target)
    with pytest.raises(ValueError, match="use_gan=True"):
        LandmarkVideoModel(get_config("landmark-video-tiny")).adversarial_losses(frames[:, 0], target)


@pytest.mark.parametrize("field, value", [("use_gan", "yes"), ("gan_weight", 0), ("gan_weight", -1.0),
                                          ("num_discriminators", 0), ("num_discriminators", 7),
                                          ("discriminator_layers", 0), ("discriminator_filters", 2.5)])
def test_bad_gan_config_values_get_one_clear_error(field, value):
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        LandmarkVideoConfig(**{field: value})


# -- through the training loop ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gan_training_runs_under_both_engines_and_resumes_exactly(tmp_path):
    """The GAN needs nothing from the loop: DeepSpeed at TP=2 and Accelerate at DP=2 train it with their one
    optimizer, resume bit for bit (the discriminator's weights and Adam state included), and save it."""
    from dist_utils import run_ranks
    from models.landmark_video.test_landmark_training import FACE_FRAMES, flags
    from training.resume_utils import assert_same_run, run_then_resume

    if not FACE_FRAMES.is_dir():
        pytest.skip(f"real face frames not found at {FACE_FRAMES} (../shared/data of the checkout is absent)")
    data = tmp_path / "faces"
    (data / "04").mkdir(parents=True)
    for path in sorted((FACE_FRAMES / "04").glob("*.png"))[:10]:
        Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR).save(data / "04" / path.name)
    gan = ["--set", "use_gan=true", "--set", "discriminator_filters=8", "--set", "discriminator_layers=2"]
    ds, acc = tmp_path / "ds_tp2", tmp_path / "acc_dp2"
    # 10 frames: 6 training samples, 3 steps per epoch at DP=1 (micro-batch 2), so the resumed runs continue past an
    # epoch's end
    run_ranks(run_then_resume, [(flags(data, ds, steps=5, engine="deepspeed", tp=2, save_every=2) + gan, 2)])
    run_ranks(run_then_resume, [(flags(data, acc, steps=4, engine="accelerate", tp=1, save_every=2) + gan, 2)])
    for run in (ds, acc):
        assert_same_run(run, run.with_name(run.name + "-resumed"))
        info = json.loads((run / "run_info.json").read_text())
        assert info["train_frames"] == 6 and info["final_loss"] > info["eval_loss"]  # training adds the GAN terms
        # the training log shows the loss's parts, and they add up to it: recon + gan_weight (1) * G_adv + D
        from training.resume_utils import metrics

        train = [r for r in metrics(run) if r["split"] == "train"]
        assert train and all({"reconstruction_loss", "generator_adversarial_loss", "discriminator_loss"} <= set(r)
                             for r in train)
        for r in train:
            total = r["reconstruction_loss"] + r["generator_adversarial_loss"] + r["discriminator_loss"]
            assert abs(total - r["loss"]) <= 1e-5 * abs(r["loss"])
        model = AutoModel.from_pretrained(run / "model")
        assert model.config.use_gan and model.discriminator is not None
        # trained: the reference's initial biases of 0.1 have moved
        assert not torch.all(model.discriminator.scales[0].convs[1].bias == torch.tensor(0.1))


def test_adlr_hf_train_refuses_gan_under_zero3_before_writing(tmp_path, capsys):
    from models.landmark_video.test_landmark_training import FACE_FRAMES

    if not FACE_FRAMES.is_dir():
        pytest.skip(f"real face frames not found at {FACE_FRAMES} (../shared/data of the checkout is absent)")
    from adlr_hf.train import main as train_main

    out = tmp_path / "run"
    argv = ["--model", "landmark-video-tiny", "--set", "use_gan=true", "--data", str(FACE_FRAMES),
            "--deepspeed-config", "configs/deepspeed/zero3.json", "--steps", "2", "--out", str(out)]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert "use_gan=True does not train under DeepSpeed ZeRO stage 3" in err and "stage 0-2" in err
    assert not out.exists()
