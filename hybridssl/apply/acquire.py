"""``hybridssl acquire --model DIR (--shards D | --catalog F) --n N --out picks.csv``.

Ranks galaxies by how much ``--volunteers`` votes on ``--campaign``'s questions would teach the
model: BALD (Houlsby et al. 2011), as Walmsley et al. (2020) used it for Galaxy Zoo. Per question,
MI = H[mean_m p(counts | a_m, N)] - mean_m H[p(counts | a_m, N)] over the MC-dropout samples m:
high where the samples are each confident but disagree. Two-answer questions use their exact
Beta-Binomial count distribution; questions with more answers use the mean over answers of the
one-vs-rest Beta-Binomial MI (equal to the exact value for two answers), not the full
Dirichlet-Multinomial. A galaxy's score sums its questions' MI, each weighted by the probability
the decision tree asks it (from the MC-mean fractions), so questions few volunteers would reach
count for little. Every galaxy of the source is ranked, labelled or not.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from hybridssl.apply.inference import add_model_arguments, concentration_batches, open_model_and_source, positive_int
from hybridssl.storage.atomic import atomic_path


def add_arguments(parser) -> None:
    add_model_arguments(parser, mc_default=10)
    parser.add_argument("--n", type=positive_int, required=True, help="how many galaxies to pick")
    parser.add_argument("--out", required=True, help="output CSV (rank, id_str, bald, {question}_mi)")
    parser.add_argument("--campaign", default="dr8", help="campaign whose questions volunteers would answer "
                                                          "(default dr8)")
    parser.add_argument("--volunteers", type=positive_int, default=40,
                        help="volunteers asked each question (default 40); questions deeper in the tree "
                             "are down-weighted by their ask probability")
    parser.add_argument("--montage", help="PNG of the top picks (at most 32), titled with rank and BALD")


def campaign_scores(schema, campaign: str, conc: np.ndarray, volunteers: int) -> tuple[np.ndarray, np.ndarray]:
    """(bald (B,), per-question MI (B, n_campaign_questions)) of one batch's (K, B, n_answers) concentrations."""
    from hybridssl.apply.posterior import mean_fractions, question_bald

    cols = [schema.column_index[c] for c in schema.campaign_columns(campaign)]
    ask = schema.ask_probability(mean_fractions(conc, schema.question_index))
    ask = ask[:, [i for i, q in enumerate(schema.questions) if q.campaign == campaign]]
    mi = question_bald(conc[..., cols], schema.question_index[cols], volunteers)
    return (mi * ask).sum(1), mi


def run(args) -> int:
    start = time.perf_counter()
    model, dataset = open_model_and_source(args, "acquire", min_samples=2)
    schema = model.schema
    schema.campaign_columns(args.campaign)  # unknown campaign: SchemaError naming the valid ones
    questions = [q.name for q in schema.questions if q.campaign == args.campaign]
    ids, scores, mis = [], [], []
    for batch, conc in concentration_batches(model, dataset, args, "acquire"):
        score, mi = campaign_scores(schema, args.campaign, conc, args.volunteers)
        ids += batch["id_str"]
        scores.append(score)
        mis.append(mi)
    score, mi = np.concatenate(scores), np.concatenate(mis)
    top = np.argsort(-score, kind="stable")[:args.n]
    picks = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "id_str": [ids[i] for i in top], "bald": score[top],
                          **{f"{q}_mi": mi[top, j] for j, q in enumerate(questions)}})
    with atomic_path(args.out) as tmp:
        picks.to_csv(tmp, index=False, float_format="%.6g")
    if args.n > len(ids):
        print(f"acquire: asked for {args.n} but the source has {len(ids)} galaxies; writing all", file=sys.stderr)
    print(f"acquire: ranked {len(ids)} galaxies by BALD ({args.campaign}, {len(questions)} questions, "
          f"{args.volunteers} volunteers, {args.mc_samples} MC samples) in {time.perf_counter() - start:.1f} s; "
          f"top {len(picks)} -> {args.out}")
    print(picks.head(5)[["rank", "id_str", "bald"]].to_string(index=False))
    if args.montage:
        save_picks_montage(args, dataset, top[:32], picks.head(32))
        print(f"acquire: montage of the top {min(len(picks), 32)} -> {args.montage}")
    return 0


def save_picks_montage(args, dataset, rows: np.ndarray, picks: pd.DataFrame) -> None:
    """The top picks' images, read back from the source by row (its order is the ranking's)."""
    from hybridssl.apply.montage import save_montage

    images = [dataset[int(r)]["image"].permute(1, 2, 0).numpy() for r in rows]
    titles = [f"#{r} BALD {b:.3g}\n{i}" for r, b, i in zip(picks["rank"], picks["bald"], picks["id_str"])]
    save_montage(args.montage, images, titles,
                 suptitle=f"Next galaxies for volunteers ({args.campaign} questions): highest BALD first")
