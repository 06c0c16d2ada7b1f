"""hybridssl.data.distributed: the one rank helper and the one seed helper."""
import pytest

from hybridssl.data.distributed import derive_seed, rank_and_world_size

JOB_VARS = ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")


@pytest.fixture
def env(monkeypatch):
    for var in JOB_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_a_plain_process_is_rank_0_of_1(env):
    assert rank_and_world_size() == (0, 1)


def test_torchrun_variables_win_over_slurm(env):
    for var, value in zip(JOB_VARS, ("3", "4", "1", "8")):
        env.setenv(var, value)
    assert rank_and_world_size() == (3, 4)


def test_srun_tasks_without_torchrun(env):
    env.setenv("SLURM_PROCID", "2")
    env.setenv("SLURM_NTASKS", "5")
    assert rank_and_world_size() == (2, 5)


def test_arguments_win_and_come_in_pairs(env):
    env.setenv("RANK", "3")
    env.setenv("WORLD_SIZE", "4")
    assert rank_and_world_size(1, 2) == (1, 2)
    with pytest.raises(ValueError, match="both rank and world_size"):
        rank_and_world_size(rank=1)


def test_derived_seeds_are_repeatable_distinct_and_32_bit():
    seeds = {derive_seed(0, epoch, rank) for epoch in range(4) for rank in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2**32 for s in seeds)
    assert derive_seed(7, 1, 2) == derive_seed(7, 1, 2) != derive_seed(7, 2, 1)
