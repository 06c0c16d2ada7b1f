"""The ablation's table: one row per variant, the mean over its seeds at each checkpoint."""
from benchmarks.recipe_ablation import VARIANTS, seed_curves, table


def test_table_averages_seeds_per_checkpoint_and_shows_the_random_inits():
    runs = {"paper_s0": {"variant": "paper", "curve": {"75": 0.6, "150": 0.7}},
            "paper_s1": {"variant": "paper", "curve": {"75": 0.8, "150": 0.5}},
            "px96_s0": {"variant": "px96", "curve": {"75": 0.55}}}
    lines = table({"runs": runs, "random_init": {"64": 0.58}}, batch_size=32).splitlines()
    assert lines[0] == "| variant | seeds | 2,400 | 4,800 |"
    assert lines[2] == "| paper | 2 | 0.700 | 0.600 |"
    assert lines[3] == "| px96 | 1 | 0.550 | nan |"  # a checkpoint no seed reached
    assert lines[4].startswith("| random init (64 px) | | 0.580 |")
    assert set(VARIANTS) >= {"paper", "physical", "crop_mild", "px96"}


def test_seed_curves_give_the_mean_and_the_seed_range_per_checkpoint():
    runs = {"a_s0": {"variant": "a", "curve": {"75": 0.6, "150": 0.7}},
            "a_s1": {"variant": "a", "curve": {"75": 0.8, "150": 0.5}}}
    assert seed_curves({"runs": runs}, 32) == {"a": [(2400, 0.7, 0.6, 0.8), (4800, 0.6, 0.5, 0.7)]}
