"""Releasing an export into weights/: fp16 weights that load like any export, a model card, and
no folder of someone else's replaced."""
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from benchmarks.release import card_table, release
from hybridssl.export.timm_folder import load_backbone, load_head, read_export_info


@pytest.fixture(scope="module")
def exported(tiny_pretrained):
    return tiny_pretrained[2].parent  # run/ and export/


TABLE = "| features | AUC |\n|---|---|\n| photometric | 0.7 |\n"


def test_release_loads_as_an_export_in_fp16(exported, tmp_path):
    dest = release(exported / "export", "tiny", exported / "run", TABLE, "test CPU",
                   root=tmp_path / "weights")
    assert {t.dtype for t in load_file(str(dest / "model.safetensors")).values() if t.is_floating_point()} == \
        {torch.float16}
    ref, _ = load_backbone(exported / "export")
    ours, info = load_backbone(dest)
    direct = timm.create_model(f"local-dir:{dest}", pretrained=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(direct(x), ours(x))
    assert load_head(dest) is not None and info["mode"] == "hybrid"
    card = (dest / "README.md").read_text()
    assert "2 × 8 = 16 samples seen" in card and "| photometric | 0.7 |" in card and "test CPU" in card


def test_release_refuses_a_folder_it_did_not_write(exported, tmp_path):
    foreign = tmp_path / "weights" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not a hybridssl release"):
        release(exported / "export", "mine", exported / "run", TABLE, "cpu", root=tmp_path / "weights")
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_release_refuses_weights_over_the_size_cap(exported, tmp_path):
    with pytest.raises(SystemExit, match="over --max-mb"):
        release(exported / "export", "big", exported / "run", TABLE, "cpu",
                root=tmp_path / "weights", max_mb=1e-4)
    assert not (tmp_path / "weights" / "big").exists()


def _score(group, budget, auc):
    return {"group": group, "budget": budget, "auc_mean": auc, "auc_lo": auc - 0.05, "auc_hi": auc + 0.05}


def test_card_table_shows_the_release_its_baselines_and_paired_differences_from_its_side():
    scores = [_score(g, b, auc + (0.01 if b == 50 else 0)) for g, auc in
              (("hyb", 0.70), ("photometric", 0.68), ("scratch", 0.60), ("other", 0.50)) for b in (20, 50, "mean")]
    diffs = [{"group": "hyb", "versus": "photometric", "budget": "mean", "auc_difference": 0.02, "auc_lo": -0.01,
              "auc_hi": 0.05},
             {"group": "photometric", "versus": "hyb", "budget": "mean", "auc_difference": -0.02, "auc_lo": -0.05,
              "auc_hi": 0.01},  # the benchmark may store the pair either way round
             {"group": "scratch", "versus": "hyb", "budget": "mean", "auc_difference": -0.10, "auc_lo": -0.15,
              "auc_hi": -0.05}]
    table = card_table({"repeated": {"plain": {"scores": scores, "differences": diffs}}}, "hyb", {})
    lines = table.splitlines()
    assert lines[0] == "| features | mean AUC [95 %] | AUC 20 | AUC 50 |"
    assert [line.split(" |")[0] for line in lines[2:5]] == [
        "| hyb (this release)", "| photometric baseline (8 numbers)", "| random init"]
    assert "other" not in table  # only the rows asked for and the baselines
    assert "| photometric baseline (8 numbers) | +0.020 [-0.010, +0.050] |" in table
    assert "| random init | +0.100 [+0.050, +0.150] |" in table
    assert table.count("| photometric baseline (8 numbers) | +") == 1
    with pytest.raises(SystemExit, match="no repeated-split scores for missing"):
        card_table({"repeated": {"plain": {"scores": scores, "differences": []}}}, "hyb", {"missing": "m"})


RELEASED = sorted(p for p in (Path(__file__).resolve().parents[2] / "weights").glob("*") if p.is_dir())


@pytest.mark.parametrize("release_dir", RELEASED, ids=[p.name for p in RELEASED])
def test_committed_releases_load_and_carry_their_card(release_dir):
    """What weights/ ships: loadable offline by timm and hybridssl, finite features, under 10 MB,
    a model card with samples seen and the benchmark's baselines."""
    info = read_export_info(release_dir)
    model, _ = load_backbone(release_dir)
    direct = timm.create_model(f"local-dir:{release_dir}", pretrained=True).eval()
    x = torch.rand(2, info["in_chans"], info["image_size"], info["image_size"])
    with torch.no_grad():
        f = model(x)
        torch.testing.assert_close(direct(x), f)
    assert f.shape == (2, model.num_features) and torch.isfinite(f).all()
    assert sum(p.stat().st_size for p in release_dir.iterdir()) < 10 * 2**20
    card = (release_dir / "README.md").read_text()
    assert "samples seen" in card and "photometric" in card and "random init" in card
