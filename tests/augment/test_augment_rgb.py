"""Two-view Kornia augmentations, the evaluation transform and `hybridssl augment-preview`."""
import pytest
import torch
from factories import write_shards
from PIL import Image

from hybridssl import cli
from hybridssl.augment.config import load_augment_config
from hybridssl.augment.rgb import EvalTransform, TwoViews
from hybridssl.config import ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SMALL = ["crop_size=24", "blur_kernel=5", "resize_size=28"]


def batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("device", DEVICES)
def test_views_shapes_dtypes_devices(device):
    views = TwoViews(load_augment_config("galaxy", SMALL))
    v1, v2 = views(batch().to(device))
    for v in (v1, v2):
        assert v.shape == (6, 3, 24, 24) and v.dtype == torch.float32 and v.device.type == device
        assert torch.isfinite(v).all()
    assert not torch.allclose(v1, v2)


def test_parameters_are_drawn_per_sample():
    torch.manual_seed(0)
    same = batch(1).repeat(8, 1, 1, 1)  # eight copies of one image
    v1, v2 = TwoViews(load_augment_config("galaxy", SMALL))(same)
    for v in (v1, v2):
        flat = v.flatten(1)
        distinct = {tuple(torch.round(r * 1e3).tolist()) for r in flat}
        assert len(distinct) == 8


def test_asymmetric_solarize_probability_per_view():
    cfg = load_augment_config("minimal", ["crop_size=32", "resize_size=32", "blur_kernel=5",
                                          "solarize_p=[0.0,1.0]", "mean=[0,0,0]", "std=[1,1,1]"])
    x = batch(4)
    v1, v2 = TwoViews(cfg)(x)
    f = x.float() / 255
    assert torch.allclose(v1, f, atol=1e-5)  # minimal preset: the image itself
    assert torch.allclose(v2, torch.where(f >= 0.5, 1 - f, f), atol=1e-5)  # solarized at 0.5


def test_crop_larger_than_image_names_the_key_at_first_call():
    views = TwoViews(load_augment_config("galaxy", ["crop_size=64", "resize_size=64"]))
    with pytest.raises(ConfigError, match=r"augment.crop_size \(64\) is larger than the images \(32 px\)"):
        views(batch(2, size=32))


@pytest.mark.parametrize("override, key", [("hflip_p=1.5", "augment.hflip_p"),
                                           ("blur_p=[1.0,-0.1]", r"augment.blur_p\[1\]"),
                                           ("blur_kernel=4", "augment.blur_kernel"),
                                           ("crop_scale=[0.9,0.3]", "augment.crop_scale")])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_augment_config("galaxy", [override])


def test_non_uint8_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        TwoViews(load_augment_config("galaxy", SMALL))(batch().float())


def test_eval_transform_is_deterministic_resize_and_centre_crop():
    cfg = load_augment_config("minimal", ["crop_size=16", "resize_size=16", "blur_kernel=5",
                                          "mean=[0,0,0]", "std=[1,1,1]"])
    x = batch(3, size=32)
    out = EvalTransform(cfg)(x)
    assert out.shape == (3, 3, 16, 16) and torch.equal(out, EvalTransform(cfg)(x))
    big = load_augment_config("minimal", ["crop_size=16", "resize_size=32", "blur_kernel=5",
                                          "mean=[0,0,0]", "std=[1,1,1]"])
    assert torch.allclose(EvalTransform(big)(x), x[:, :, 8:24, 8:24].float() / 255, atol=1e-5)


def test_augment_preview_writes_the_grid(tmp_path, capsys):
    shards = write_shards(tmp_path / "s", 5, n_shards=1, image_size=32)
    out = tmp_path / "grid.png"
    rc = cli.main(["augment-preview", "--shards", str(shards), "--out", str(out), "--n", "4",
                   "crop_size=24", "blur_kernel=5"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (4 * 24 + 5 * 2, 3 * 24 + 4 * 2) and im.mode == "RGB"


def test_augment_preview_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["augment-preview", "--help"])
    text = capsys.readouterr().out
    for opt in ("--shards", "--out", "--config", "--n", "--seed"):
        assert opt in text


def test_galaxy_preset_is_the_papers_recipe_without_blur():
    cfg = load_augment_config("galaxy")
    assert (cfg.crop_scale, cfg.crop_ratio) == ([0.3, 0.85], [0.8, 1.2])
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, cfg.jitter_p) == (0.4, 0.4, 0.4, 0.1, 0.8)
    assert cfg.greyscale_p == 0.3 and cfg.blur_p == [0.0, 0.0] and cfg.solarize_p == [0.0, 0.0]
    imagenet = load_augment_config("byol_imagenet")
    assert imagenet.blur_p == [1.0, 0.1] and imagenet.solarize_p == [0.0, 0.2]


def test_head_view_is_view_one_before_blur_and_solarisation():
    plain = ["crop_size=32", "resize_size=32", "blur_kernel=5", "mean=[0,0,0]", "std=[1,1,1]"]
    x = batch(4)
    v1, _, head = TwoViews(load_augment_config("minimal", plain + ["blur_p=[1.0,0.0]", "blur_sigma=[2,2]"])) \
        .with_head_view(x)
    f = x.float() / 255
    assert torch.allclose(head, f, atol=1e-5)  # minimal preset: the image itself, unblurred
    assert not torch.allclose(v1, f, atol=1e-2)  # while BYOL's view 1 is blurred
    v1, _, head = TwoViews(load_augment_config("minimal", plain + ["solarize_p=[1.0,0.0]"])).with_head_view(x)
    assert torch.allclose(head, f, atol=1e-5) and torch.allclose(v1, torch.where(f >= 0.5, 1 - f, f), atol=1e-5)
    v1, _, head = TwoViews(load_augment_config("galaxy", SMALL)).with_head_view(batch(4, size=32))
    assert head is v1  # never distorted: the head can share view 1's features


def test_pretrain_command_line_swaps_the_recipe_and_keeps_the_sizes(capsys):
    rc = cli.main(["pretrain", "--config", "demo", "--print-config", "mode=scratch", "augment=byol_imagenet",
                   "augment.greyscale_p=0.5"])
    text = capsys.readouterr().out
    assert rc == 0
    from omegaconf import OmegaConf
    aug = OmegaConf.create(text).augment
    assert list(aug.blur_p) == [1.0, 0.1] and list(aug.solarize_p) == [0.0, 0.2]  # byol_imagenet's recipe
    assert aug.crop_size == 64 and aug.blur_kernel == 7  # demo.yaml's sizes stay
    assert aug.greyscale_p == 0.5  # later overrides still win


def test_blur_draws_its_sigma_on_the_host():
    """Kornia reads the blur's sigma back to check it: drawn on the host, that waits for no GPU.
    Every other generator follows the module wherever it is moved (float64 stands in for a GPU:
    the same ``Module._apply``, and no GPU needed)."""
    import kornia.augmentation as K
    views = TwoViews(load_augment_config("byol_imagenet", ["crop_size=32", "resize_size=32", "blur_kernel=3"]))
    views.to(torch.float64)
    ops = [m for m in views.modules() if isinstance(m, K.AugmentationBase2D)]
    blurs = [m for m in ops if isinstance(m, K.RandomGaussianBlur)]
    assert len(blurs) == 2 and all((b.device.type, b.dtype) == ("cpu", torch.float32) for b in blurs)
    assert {m.dtype for m in ops if m not in blurs} == {torch.float64}
