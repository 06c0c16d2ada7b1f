"""``hybridssl predict --model DIR (--shards D | --catalog F) --out preds.parquet``.

For every galaxy and answer column ``c``: ``c_fraction`` (expected vote fraction, the Dirichlet
mean averaged over MC samples), ``c_fraction_lo`` / ``c_fraction_hi`` (central ``--interval`` of
the fraction's Beta marginal, mixed over MC samples), and per question ``{question}_asked`` (the
probability the decision tree reaches it, from the expected fractions). Rows are written
``ROW_GROUP`` at a time into a temp file renamed onto ``--out`` at the end. ``--out DIR/``
writes one file per shard instead (``hybridssl.apply.survey``).

A ``hybridssl finetune`` export with a classification head gives instead ``{label}_pred`` (the most
probable class) and ``{label}_prob_{class}`` per class; with a regression head, ``{label}_pred``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hybridssl.apply import survey
from hybridssl.apply.inference import (add_model_arguments, batches, concentration_batches, open_model,
                                      open_model_and_source)
from hybridssl.storage.atomic import atomic_path
from hybridssl.storage.outputs import MARK


def open_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {value}")
    return value


def prediction_columns(schema, conc: np.ndarray, interval: float) -> dict[str, np.ndarray]:
    """Column name -> float32 values for one batch, question by question."""
    from hybridssl.apply.posterior import beta_marginals, fraction_interval, mean_fractions

    frac = mean_fractions(conc, schema.question_index)
    lo, hi = fraction_interval(*beta_marginals(conc, schema.question_index), interval)
    asked = schema.ask_probability(frac)
    cols = {}
    for qi, q in enumerate(schema.questions):
        for j, c in zip(range(q.start, q.end), q.columns):
            cols.update({f"{c}_fraction": frac[:, j], f"{c}_fraction_lo": lo[:, j], f"{c}_fraction_hi": hi[:, j]})
        cols[f"{q.name}_asked"] = asked[:, qi]
    return {k: v.astype(np.float32) for k, v in cols.items()}


@torch.inference_mode()
def task_columns(model, images: torch.Tensor) -> dict[str, np.ndarray]:
    """A finetuned task head's predictions for one batch, named after its label column."""
    spec = model.info["task_head"]
    out = model.task_head(model.features(images)).float()
    label = spec["label_column"]
    if spec["task"] == "regression":
        return {f"{label}_pred": (out[:, 0] * spec["target_std"] + spec["target_mean"]).cpu().numpy()}
    probs = out.softmax(1).cpu().numpy()
    classes = spec["classes"]
    cols = {f"{label}_pred": [classes[k] for k in probs.argmax(1)]}
    cols.update({f"{label}_prob_{c}": probs[:, k] for k, c in enumerate(classes)})
    return cols


POSTERIOR_THREADS = 2  # the Beta quantiles (scipy, GIL released) of earlier batches run beside the model


def column_batches(model, dataset, args):
    """(batch, prediction columns) for every batch, in order: the finetuned task's, or vote fractions.
    The vote-fraction intervals are computed in a thread pool while the model runs the next batches."""
    if model.task_head is not None:
        for batch in batches(dataset, args.batch_size, args.workers, "predict"):
            yield batch, task_columns(model, batch["image"])
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(POSTERIOR_THREADS) as pool:
        pending = deque()
        for batch, conc in concentration_batches(model, dataset, args, "predict"):
            pending.append((batch, pool.submit(prediction_columns, model.schema, conc, args.interval)))
            if len(pending) > POSTERIOR_THREADS:  # bounded: a few batches in flight, not the whole set
                done, future = pending.popleft()
                yield done, future.result()
        for done, future in pending:
            yield done, future.result()


def add_arguments(parser) -> None:
    add_model_arguments(parser, mc_default=1)
    parser.add_argument("--out", required=True,
                        help="output FILE.parquet, or a folder (DIR/ or an existing folder) for one file per shard "
                             "plus _manifest.json: resumable, several processes with torchrun")
    parser.add_argument("--interval", type=open_fraction, default=0.9,
                        help="central interval of each vote fraction (default 0.9: 5%% to 95%%)")


# Rows per parquet row group. A group per batch (685 column chunks per 128 rows), dictionary-encoded,
# cost the main loop 0.4 ms per galaxy to write (0.05 ms like this; a GPU's forward is ~0.1 ms) and
# made files 1.5x larger and ~20x slower to read. Floats are written plain: no dictionary fits them.
ROW_GROUP = 8192


def write_predictions(model, dataset, args, out, with_campaign: bool | None = None) -> int:
    """Predict every galaxy of ``dataset`` into parquet ``out`` (atomically); the number of rows.
    ``with_campaign`` None: a campaign column only when the source knows campaigns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, writer, pending = 0, None, []
    with atomic_path(out) as tmp:
        try:
            for batch, predictions in column_batches(model, dataset, args):
                cols = {"id_str": pa.array(batch["id_str"], pa.string())}
                if with_campaign is None:
                    with_campaign = any(c is not None for c in batch["campaign"])
                if with_campaign:
                    cols["campaign"] = pa.array(batch["campaign"], pa.string())
                cols.update(predictions)
                table = pa.table(cols).replace_schema_metadata({MARK: "predict"})  # ours to replace later
                if writer is None:
                    keyed = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
                    writer = pq.ParquetWriter(str(tmp), table.schema, use_dictionary=keyed)
                pending.append(table)
                n += len(batch["id_str"])
                if sum(map(len, pending)) >= ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
        finally:
            if writer is not None:
                writer.close()
    return n


def run_per_shard(args) -> int:
    """``--out DIR/``: one parquet per shard of ``--shards``, this rank's share (``hybridssl.apply.survey``)."""
    args.device = survey.rank_device(args.device, survey.ranks()[2])
    model = open_model(args, "predict", task_head_ok=True)
    model.use_fast_gpu()

    def write(dataset, shard, path):
        torch.manual_seed(survey.shard_seed(args.seed, shard))
        write_predictions(model, dataset, args, path, with_campaign=True)  # one schema across files

    return survey.run_shards(args, "predict", model,
                             {"mc_samples": args.mc_samples, "interval": args.interval, "seed": args.seed}, write)


def run(args) -> int:
    if survey.is_survey_out(args.out):
        return run_per_shard(args)
    start = time.perf_counter()
    model, dataset = open_model_and_source(args, "predict", task_head_ok=True)
    n = write_predictions(model, dataset, args, args.out)
    what = (f"{model.info['task_head']['task']} of {model.info['task_head']['label_column']!r}"
            if model.task_head is not None else
            f"{model.schema.n_answers} answers x (fraction, {args.interval:g} interval), "
            f"{model.schema.n_questions} ask probabilities, {args.mc_samples} MC sample(s)")
    print(f"predict: {n} galaxies, {what}, "
          f"{time.perf_counter() - start:.1f} s -> {args.out}")
    return 0
