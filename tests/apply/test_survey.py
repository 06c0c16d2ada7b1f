"""`predict`/`embed --out DIR/`: one file per shard + manifest, ranks, resume, fsspec shard URLs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from backbone_factory import write_export
from factories import fake_id, write_shards
from hybridssl.apply.embeddings import read_embeddings
from hybridssl.apply.survey import OUT_MANIFEST, RUN_FILE
from hybridssl.cli import main
from hybridssl.storage.shards import MANIFEST, sha256_file

N, SHARDS = 22, 4
PARTS = [f"shard-{i:06d}.parquet" for i in range(SHARDS)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey")
    return {"model": write_export(root / "model", head_dropout=0.3),
            "shards": write_shards(root / "shards", N, labelled=True, n_shards=SHARDS)}


def predict(setup, out, *extra, shards=None):
    return main(["predict", "--model", str(setup["model"]), "--shards", str(shards or setup["shards"]),
                 "--out", str(out), "--batch-size", "4", *extra])


def as_rank(monkeypatch, rank, world):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def test_one_file_per_shard_equals_the_single_file_and_the_manifest_lists_them(setup, tmp_path, capsys):
    assert predict(setup, tmp_path / "one.parquet") == 0
    assert predict(setup, f"{tmp_path / 'dir'}/") == 0
    assert f"predict: {N} galaxies in {SHARDS} files" in capsys.readouterr().out
    out = tmp_path / "dir"
    assert sorted(p.name for p in out.iterdir()) == sorted([*PARTS, OUT_MANIFEST, RUN_FILE, "_parts"])
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "one.parquet"))
    doc = json.loads((out / OUT_MANIFEST).read_text())
    source = json.loads((setup["shards"] / MANIFEST).read_text())
    assert doc["n_rows"] == N and [o["name"] for o in doc["outputs"]] == PARTS
    for o, s in zip(doc["outputs"], source["shards"]):
        ids = pd.read_parquet(out / o["name"]).id_str.tolist()
        assert o["rows"] == s["n_samples"] == len(ids) and (o["first_id"], o["last_id"]) == (ids[0], ids[-1])
        assert o["sha256"] == sha256_file(out / o["name"])
    assert doc["run"]["mc_samples"] == 1 and doc["run"]["model"] == str(setup["model"].resolve())


def test_two_ranks_split_the_shards_and_the_last_writes_the_manifest(setup, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ranks"
    as_rank(monkeypatch, 1, 2)
    assert predict(setup, f"{out}/", "--mc-samples", "3") == 0
    assert sorted(p.name for p in out.glob("*.parquet")) == [PARTS[1], PARTS[3]]
    assert not (out / OUT_MANIFEST).exists() and "2 shard(s) left to other ranks" in capsys.readouterr().err
    as_rank(monkeypatch, 0, 2)
    assert predict(setup, out, "--mc-samples", "3") == 0  # an existing folder needs no trailing slash
    assert (out / OUT_MANIFEST).exists()
    monkeypatch.delenv("RANK"), monkeypatch.delenv("WORLD_SIZE"), monkeypatch.delenv("LOCAL_RANK")
    assert predict(setup, f"{tmp_path / 'solo'}/", "--mc-samples", "3") == 0
    two, one = pd.read_parquet(out), pd.read_parquet(tmp_path / "solo")
    assert one.id_str.tolist() == [fake_id(i) for i in range(N)]  # every id exactly once
    pd.testing.assert_frame_equal(two, one)  # MC masks seeded per shard, not per rank


def test_a_rerun_writes_only_the_missing_files(setup, tmp_path, capsys):
    out = tmp_path / "resume"
    assert predict(setup, f"{out}/") == 0
    before = {p: (out / p).stat().st_ino for p in PARTS}
    (out / PARTS[2]).unlink(), (out / OUT_MANIFEST).unlink()  # as if killed before these were written
    (out / ".shard-000002.parquet.x1.tmp").write_bytes(b"partial")  # a killed atomic write's leftover
    capsys.readouterr()
    assert predict(setup, out) == 0
    assert f"{SHARDS} of {SHARDS} shards, {SHARDS - 1} already written" in capsys.readouterr().err
    assert {p: (out / p).stat().st_ino for p in PARTS if p != PARTS[2]} == \
        {p: i for p, i in before.items() if p != PARTS[2]}
    assert json.loads((out / OUT_MANIFEST).read_text())["n_rows"] == N
    assert pd.read_parquet(out).id_str.tolist() == [fake_id(i) for i in range(N)]


@pytest.mark.parametrize("extra, key", [(("--seed", "3"), "seed"), (("--interval", "0.5"), "interval")])
def test_a_folder_of_another_run_is_refused(setup, tmp_path, capsys, extra, key):
    out = tmp_path / "other"
    assert predict(setup, f"{out}/") == 0
    capsys.readouterr()
    assert predict(setup, out, *extra) == 2
    err = capsys.readouterr().err
    assert f"holds the outputs of another run ({key}:" in err and len(err.strip().splitlines()) == 1


def test_unrelated_folder_catalog_and_remote_single_file_are_refused(setup, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert predict(setup, tmp_path) == 2
    assert "not empty (notes.txt, ...)" in capsys.readouterr().err and (tmp_path / "notes.txt").exists()
    assert main(["predict", "--model", str(setup["model"]), "--catalog", "x.csv", "--out", f"{tmp_path}/d/"]) == 2
    assert "one file per shard needs --shards" in capsys.readouterr().err
    assert predict(setup, tmp_path / "p.parquet", shards="memory://nowhere") == 2
    assert "give --out a folder" in capsys.readouterr().err


@pytest.fixture
def memory_set(setup):
    fs = fsspec.filesystem("memory")
    for p in setup["shards"].iterdir():
        fs.pipe(f"/survey-set/{p.name}", p.read_bytes())
    yield fs
    fs.rm("/survey-set", recursive=True)


def test_shards_behind_a_url_are_read_through_fsspec(setup, tmp_path, memory_set):
    assert predict(setup, f"{tmp_path / 'local'}/") == 0
    assert predict(setup, f"{tmp_path / 'mem'}/", shards="memory://survey-set") == 0
    assert predict(setup, f"{tmp_path / 'file'}/", shards=f"file://{setup['shards']}") == 0
    local = pd.read_parquet(tmp_path / "local")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "mem"), local)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "file"), local)
    assert json.loads((tmp_path / "mem" / RUN_FILE).read_text())["shards"] == "memory://survey-set"


def test_a_changed_or_missing_remote_shard_is_named(setup, tmp_path, memory_set, capsys):
    data = bytearray(memory_set.cat("/survey-set/shard-000001.tar"))
    data[700] ^= 1
    memory_set.pipe("/survey-set/shard-000001.tar", bytes(data))
    assert predict(setup, f"{tmp_path / 'a'}/", shards="memory://survey-set") == 2
    assert "memory://survey-set/shard-000001.tar: sha256" in capsys.readouterr().err
    memory_set.rm("/survey-set/shard-000001.tar")
    assert predict(setup, f"{tmp_path / 'a'}/", shards="memory://survey-set") == 2
    assert "shard-000001.tar: listed in memory://survey-set/manifest.json but missing" in capsys.readouterr().err
    assert predict(setup, f"{tmp_path / 'b'}/", shards="memory://no-such-set") == 2
    assert "memory://no-such-set/manifest.json: no such file" in capsys.readouterr().err


def test_an_embeddings_folder_reads_as_the_single_file_and_feeds_similar(setup, tmp_path, capsys):
    args = ["embed", "--model", str(setup["model"]), "--shards", str(setup["shards"]), "--batch-size", "5"]
    assert main([*args, "--out", str(tmp_path / "emb.parquet")]) == 0
    assert main([*args, "--out", f"{tmp_path / 'emb'}/"]) == 0
    one, folder = read_embeddings(tmp_path / "emb.parquet"), read_embeddings(tmp_path / "emb")
    assert list(folder.ids) == one.ids == [fake_id(i) for i in range(N)]
    np.testing.assert_allclose(folder.x, one.x, atol=1e-5)  # centred on the whole set, not per shard
    np.testing.assert_allclose(folder.metadata["centre"], one.metadata["centre"], atol=1e-5)
    pd.testing.assert_frame_equal(folder.meta, one.meta)
    assert main(["similar", "--embeddings", str(tmp_path / "emb"), "--query", fake_id(3), "--k", "3"]) == 0
    assert fake_id(3) in capsys.readouterr().out
    part = tmp_path / "emb" / PARTS[0]
    shutil.copy(tmp_path / "emb" / PARTS[1], part)  # a file changed after the manifest
    assert main(["similar", "--embeddings", str(tmp_path / "emb"), "--query", fake_id(3)]) == 2
    assert f"{part}: missing or changed since {OUT_MANIFEST}" in capsys.readouterr().err


def test_an_unfinished_embeddings_folder_says_to_rerun(setup, tmp_path, monkeypatch, capsys):
    as_rank(monkeypatch, 0, 2)
    assert main(["embed", "--model", str(setup["model"]), "--shards", str(setup["shards"]),
                 "--out", f"{tmp_path / 'emb'}/"]) == 0
    assert main(["anomalies", "--embeddings", str(tmp_path / "emb"), "--labelled-interesting", fake_id(0)]) == 2
    assert f"no {OUT_MANIFEST}: the run writing it has not finished" in capsys.readouterr().err


def test_torchrun_two_processes(setup, tmp_path):
    """Two ranks launched by torchrun on loopback (CPU) write disjoint files and one manifest."""
    out = tmp_path / "tr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "hybridssl.cli", "predict", "--model", str(setup["model"]), "--shards",
                        str(setup["shards"]), "--out", f"{out}/", "--mc-samples", "2"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "rank 0 of 2: 2 of 4 shards" in p.stderr and "rank 1 of 2: 2 of 4 shards" in p.stderr
    doc = json.loads((out / OUT_MANIFEST).read_text())
    assert doc["n_rows"] == N and sorted(pd.read_parquet(out).id_str) == sorted(fake_id(i) for i in range(N))


def clear_launcher(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("env, share", [
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, [1, 3]),  # srun --ntasks=2, no torchrun
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, [1]),  # --array=4-7
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, [3]),
])
def test_srun_and_slurm_array_tasks_write_only_their_share(setup, tmp_path, monkeypatch, capsys, env, share):
    clear_launcher(monkeypatch)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "slurm"
    assert predict(setup, f"{out}/") == 0
    assert sorted(p.name for p in out.glob("*.parquet")) == [PARTS[i] for i in share]
    assert not (out / OUT_MANIFEST).exists()


def test_a_bad_launcher_variable_is_one_line(setup, tmp_path, monkeypatch, capsys):
    clear_launcher(monkeypatch)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "9"), monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert predict(setup, f"{tmp_path / 'x'}/") == 2
    err = capsys.readouterr().err
    assert "SLURM_ARRAY_TASK_ID=9" in err and len(err.strip().splitlines()) == 1


def test_resume_with_another_export_in_the_model_folder_is_refused_naming_it(setup, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    shutil.copytree(setup["model"], model)
    out = tmp_path / "out"
    as_rank(monkeypatch, 0, 2)  # half the shards, then "killed"
    assert main(["predict", "--model", str(model), "--shards", str(setup["shards"]), "--out", f"{out}/"]) == 0
    write_export(model, head_dropout=0.3, seed=7)  # another checkpoint exported into the same folder
    capsys.readouterr()
    as_rank(monkeypatch, 1, 2)
    assert main(["predict", "--model", str(model), "--shards", str(setup["shards"]), "--out", f"{out}/"]) == 2
    err = capsys.readouterr().err
    assert "the model's files changed" in err and "model.safetensors" in err and "config.json" not in err
    assert len(err.strip().splitlines()) == 1 and not (out / PARTS[1]).exists()


def test_resume_after_the_shard_set_was_re_prepared_is_refused(setup, tmp_path, monkeypatch, capsys):
    shards = tmp_path / "shards"
    write_shards(shards, N, labelled=True, n_shards=SHARDS)
    out = tmp_path / "out"
    as_rank(monkeypatch, 0, 2)
    assert predict(setup, f"{out}/", shards=shards) == 0
    shutil.rmtree(shards)
    write_shards(shards, N, labelled=True, n_shards=SHARDS, seed=5)  # another catalog, same path
    capsys.readouterr()
    as_rank(monkeypatch, 1, 2)
    assert predict(setup, f"{out}/", shards=shards) == 2
    err = capsys.readouterr().err
    assert "the shard set's manifest changed" in err and "model" not in err.split("(", 1)[1]


def test_one_loader_per_rank_across_its_shards(setup, tmp_path, monkeypatch):
    """Workers start once per rank, not once per shard; no batch spans two shards."""
    import torch

    made = []

    class Counting(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(torch.utils.data, "DataLoader", Counting)
    out = tmp_path / "loader"
    assert predict(setup, f"{out}/", "--workers", "1", "--batch-size", "4") == 0
    assert len(made) == 1 and made[0]["num_workers"] == 1
    sizes = [s["n_samples"] for s in json.loads((setup["shards"] / MANIFEST).read_text())["shards"]]
    spans = [set(b) for b in made[0]["batch_sampler"]]
    starts = np.cumsum([0, *sizes])
    assert all(len({int(np.searchsorted(starts, i, "right")) for i in b}) == 1 for b in spans)
    assert pd.read_parquet(out).id_str.tolist() == [fake_id(i) for i in range(N)]


def test_each_file_is_hashed_by_the_rank_that_wrote_it(setup, tmp_path, monkeypatch):
    from hybridssl.apply import survey

    out = tmp_path / "digests"
    as_rank(monkeypatch, 1, 2)
    assert predict(setup, f"{out}/") == 0
    hashed = []
    real = survey.sha256_file
    monkeypatch.setattr(survey, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    as_rank(monkeypatch, 0, 2)
    assert predict(setup, f"{out}/") == 0  # writes its two files and the manifest
    assert sorted(h for h in hashed if h.endswith(".parquet")) == [PARTS[0], PARTS[2]]
    doc = json.loads((out / OUT_MANIFEST).read_text())
    assert [o["sha256"] for o in doc["outputs"]] == [sha256_file(out / p) for p in PARTS]


def test_similar_and_anomalies_read_a_folder_memory_mapped_and_agree_with_the_file(setup, tmp_path, capsys):
    args = ["embed", "--model", str(setup["model"]), "--shards", str(setup["shards"]), "--batch-size", "5"]
    assert main([*args, "--out", str(tmp_path / "emb.parquet")]) == 0
    assert main([*args, "--out", f"{tmp_path / 'emb'}/"]) == 0
    folder = read_embeddings(tmp_path / "emb")
    assert isinstance(folder.x, np.memmap) and folder.x.shape[0] == N
    built = (tmp_path / "emb" / "_features.npy").stat().st_mtime_ns
    assert read_embeddings(tmp_path / "emb").x.shape[0] == N
    assert (tmp_path / "emb" / "_features.npy").stat().st_mtime_ns == built  # built once, then mapped
    assert folder.meta_rows([7, 2, 19]).id_str.tolist() == [fake_id(7), fake_id(2), fake_id(19)]
    assert folder.rows_of([fake_id(19), fake_id(0)]).tolist() == [19, 0]
    for kind in ("file", "folder"):
        src = tmp_path / ("emb.parquet" if kind == "file" else "emb")
        assert main(["similar", "--embeddings", str(src), "--query", fake_id(3), "--k", "4",
                     "--out", str(tmp_path / f"sim-{kind}.csv")]) == 0
        assert main(["similar", "--embeddings", str(src), "--query", fake_id(3), "--k", "4", "--ann",
                     "--out", str(tmp_path / f"ann-{kind}.csv")]) == 0
        assert main(["anomalies", "--embeddings", str(src), "--labelled-interesting", f"{fake_id(1)},{fake_id(2)}",
                     "--negatives", "8", "--out", str(tmp_path / f"anom-{kind}.csv")]) == 0
    for name in ("sim", "ann", "anom"):
        a, b = (pd.read_csv(tmp_path / f"{name}-{k}.csv", dtype={"id_str": str}) for k in ("file", "folder"))
        assert a.id_str.tolist() == b.id_str.tolist()
        np.testing.assert_allclose(a.iloc[:, 2], b.iloc[:, 2], atol=1e-4)


def test_presumed_normal_rows_are_distinct_and_never_the_examples():
    from hybridssl.apply.anomalies import presumed_normal

    pos = np.array([0, 5, 6, 99])
    rows = presumed_normal(100, pos, 96, seed=1)
    assert sorted(rows.tolist()) == sorted(set(range(100)) - set(pos.tolist()))  # all 96 others, once
    small = presumed_normal(10**8, pos, 50, seed=2)
    assert len(set(small.tolist())) == 50 and not set(small.tolist()) & set(pos.tolist())
