"""Simulated Galaxy Zoo volunteers walking a campaign's decision tree from a galaxy's truth.

Everything is driven by the schema: a question's *concept* is its name without the campaign
suffix (``bar-dr5`` -> ``bar``), and each concept places its possible answers on one latent
scale (``bar``: no 0, weak 1, yes 1.5, strong 2). A volunteer perceives the galaxy's latent
value with noise that grows as the galaxy gets fainter, smaller or blurrier (its ``clarity``);
for features that fade (arms, bars, clumps, tidal debris) the perceived value also shrinks
towards "absent". They pick the nearest answer, and go on to the questions asked after that
answer. So a new campaign whose questions use known concepts and answer names needs no code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridssl.schema import Question, Schema

MIN_VOLUNTEERS, MAX_VOLUNTEERS = 5, 40
# GZ2, GZ Hubble, GZ CANDELS and GZ DECaLS DR1/2 aimed at ~40 volunteers per galaxy; in DECaLS DR5
# and DR8 active learning retired many galaxies after ~5 (Walmsley et al. 2022, 2023).
FEW_VOLUNTEERS_SHARE = {"dr5": 0.5, "dr8": 0.5}
ARTIFACT, CANT_TELL = "artifact", "cant-tell"   # answers chosen by probability, not by position


class VolunteerError(ValueError):
    """A question or answer of the schema has no simulated meaning; the message names it."""


@dataclass(frozen=True)
class Concept:
    latent: str                    # key of ``concept_latents``
    positions: dict[str, float]    # answer -> place on the latent scale
    fades: bool                    # harder to see when the galaxy is unclear -> looks absent
    signal: str | None = None      # latent whose weakness makes "cant-tell" likely


_COUNTS = {"1": 1, "2": 2, "3": 3, "4": 4, "more-than-4": 5, "5-plus": 5}
_YES_NO = {"no": 0, "yes": 1}
CONCEPTS: dict[str, Concept] = {
    "smooth-or-featured": Concept("featured", {"smooth": 0, "featured-or-disk": 1, "features": 1}, True),
    "disk-edge-on": Concept("edge_on", _YES_NO, False),
    "has-spiral-arms": Concept("spiral", _YES_NO, True),
    "bar": Concept("bar", {"no": 0, "weak": 1, "yes": 1.5, "strong": 2}, True),
    "bulge-size": Concept("bulge_size", {"none": 0, "no": 0, "small": 1, "just-noticeable": 1, "moderate": 2,
                                         "obvious": 2.5, "large": 3, "dominant": 4}, False),
    "how-rounded": Concept("elongation", {"round": 0, "completely": 0, "in-between": 1, "cigar": 2,
                                          "cigar-shaped": 2}, False),
    "edge-on-bulge": Concept("edge_bulge", {"none": 0, "no": 0, "rounded": 1, "yes": 1, "boxy": 2}, False),
    "bulge-shape": Concept("edge_bulge", {"no-bulge": 0, "none": 0, "round": 1, "rounded": 1, "boxy": 2}, False),
    "spiral-winding": Concept("winding", {"tight": 0, "medium": 1, "loose": 2}, False),
    "spiral-arm-count": Concept("arm_count", _COUNTS, False, signal="spiral"),
    "merging": Concept("merging", {"none": 0, "neither": 0, "minor-disturbance": 1, "tidal-debris": 1,
                                   "major-disturbance": 2, "both": 2.3, "merger": 3}, True),
    "something-odd": Concept("odd", _YES_NO, True),
    "clumpy-appearance": Concept("clumpy", _YES_NO, True),
    "clump-count": Concept("clump_count", _COUNTS, False, signal="clumpy"),
    "galaxy-symmetrical": Concept("symmetric", _YES_NO, False),
    "clumps-embedded-larger-object": Concept("embedded", _YES_NO, False),
}


def concept_latents(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Noise-free latent value of every concept, from the true parameters (``morphology``)."""
    disk, bt = t["disk"] > 0, t["bulge_frac"]
    # rings as volunteers see them (``rings``): a seen ring's contrast sets how sure they are
    has_arms, ring = t["arms"] > 0, np.where(t["ring_seen"] > 0, np.minimum(t["ring_contrast"] / 2, 1), 0.0)
    featured = np.max([0.8 * (1 - bt), np.where(has_arms, 0.4 + 0.6 * t["arm_strength"], 0),
                       np.where(t["bar"] > 0, 0.4 + 0.6 * t["bar"], 0), np.where(ring > 0, 0.4 + 0.5 * ring, 0),
                       np.where(t["clumps"] > 0, 0.5 + t["clump_frac"], 0), 1.2 * t["edge_on"]], axis=0)
    odd = np.max([np.where(ring > 0, 0.6 + 0.4 * ring, 0), np.clip(t["merger"] * 0.45, 0, 1),
                  t["artifact"]], axis=0)
    return {
        "featured": np.where(disk, featured, 0.0),
        "edge_on": np.clip((t["inclination"] - 65) / 20, 0, 1.5),
        "spiral": np.where(has_arms, 1.3 * t["arm_strength"], 0.0),
        "bar": 2 * t["bar"],
        "bulge_size": 4 * bt ** 0.7,
        "elongation": np.clip((0.85 - t["axis_ratio"]) / 0.25, 0, 2.5),
        "edge_bulge": np.minimum(4 * bt, 1) + (t["bar"] > 0),
        "winding": np.where(has_arms, np.clip((t["pitch"] - 10) / 10, 0, 2.5), 1.0),
        "arm_count": np.where(has_arms, t["arms"], 1.5),
        "merging": t["merger"] + (t["merger"] > 0) * (t["tail_frac"] - 0.15),
        "odd": odd,
        "clumpy": np.where(t["clumps"] > 0, 0.5 + 1.5 * t["clump_frac"], 0.0),
        "clump_count": np.where(t["clumps"] > 0, t["clumps"], 1.5),
        "symmetric": 1 - np.clip(4 * t["asymmetry"], 0, 1),
        "embedded": np.clip(1.2 - 1.6 * t["clump_frac"] + 0.3 * disk, 0, 1.2),
    }


def concept_of(question: Question) -> Concept:
    suffix = f"-{question.campaign}"
    name = question.name[: -len(suffix)] if question.name.endswith(suffix) else question.name
    if name not in CONCEPTS:
        raise VolunteerError(f"question {question.name!r}: no simulated concept {name!r}; known: {sorted(CONCEPTS)}")
    concept = CONCEPTS[name]
    unknown = [a for a in question.answers if a not in concept.positions and a not in (ARTIFACT, CANT_TELL)]
    if unknown:
        raise VolunteerError(f"question {question.name!r}: answers {unknown} have no place on the "
                             f"{name!r} scale {concept.positions}")
    return concept


def _positions(question: Question, concept: Concept) -> np.ndarray:
    """Latent place of each answer; special answers at +inf so they are never nearest."""
    return np.array([concept.positions.get(a, np.inf) for a in question.answers])


def ideal_answer(truth: dict, question: Question) -> np.ndarray:
    """(n,) answer index a perfect volunteer would give on a perfectly clear image."""
    concept = concept_of(question)
    latent = concept_latents(truth)[concept.latent]
    return np.abs(latent[:, None] - _positions(question, concept)[None]).argmin(1)


def sample_volunteer_counts(rng: np.random.Generator, n: int, campaign: str) -> np.ndarray:
    """Like the real projects: ~40 classifications per galaxy (30-40), except the share of
    ``FEW_VOLUNTEERS_SHARE`` retired early with ~5 (5-7)."""
    few = rng.random(n) < FEW_VOLUNTEERS_SHARE.get(campaign, 0.0)
    return np.where(few, rng.integers(MIN_VOLUNTEERS, 8, n), rng.integers(30, MAX_VOLUNTEERS + 1, n))


def _answers(rng, question: Question, latents: dict, truth: dict, clarity: np.ndarray, n_vol: int):
    """(n, n_vol) answer index chosen by every volunteer, as if all were asked."""
    concept = concept_of(question)
    latent = latents[concept.latent]
    if concept.fades:
        latent = latent * (0.15 + 0.85 * clarity)
    sigma = 0.2 + 0.5 * (1 - clarity)
    seen = latent[:, None] + sigma[:, None] * rng.standard_normal((len(latent), n_vol))
    choice = np.abs(seen[..., None] - _positions(question, concept)).argmin(-1)
    u, p_so_far = rng.random(choice.shape), np.zeros(len(latent))
    for answer in (ARTIFACT, CANT_TELL):
        if answer not in question.answers:
            continue
        if answer == ARTIFACT:
            p = 0.01 + 0.9 * truth["artifact"] ** 1.5
        else:
            signal = np.minimum(latents[concept.signal], 1) if concept.signal else 1.0
            p = 0.03 + 0.3 * (1 - clarity) + 0.4 * (1 - signal)
        hit = (u >= p_so_far[:, None]) & (u < (p_so_far + p)[:, None])
        choice[hit] = question.answers.index(answer)
        p_so_far = p_so_far + p
    return choice


def _tree_order(questions: list[Question]) -> list[Question]:
    """Parents before children."""
    owner = {c: q for q in questions for c in q.columns}
    depth = {}

    def d(q):
        if q.name not in depth:
            depth[q.name] = 0 if q.parent is None else d(owner[q.parent]) + 1
        return depth[q.name]
    return sorted(questions, key=d)


def simulate_votes(truth: dict[str, np.ndarray], campaign: str, schema: Schema, rng: np.random.Generator,
                   n_volunteers: np.ndarray) -> np.ndarray:
    """(n, schema.n_answers) int64 vote counts for galaxies all classified in ``campaign``.

    ``truth`` holds the morphology parameters plus ``asymmetry`` from the renderer. Columns of
    other campaigns stay zero; a question gets exactly the volunteers who gave its parent answer.
    """
    questions = [q for q in schema.questions if q.campaign == campaign]
    if not questions:
        raise VolunteerError(f"campaign {campaign!r} has no questions in schema {schema.name!r}")
    n, max_vol = len(n_volunteers), int(np.max(n_volunteers, initial=1))
    latents, clarity = concept_latents(truth), truth["clarity"]
    votes = np.zeros((n, schema.n_answers), np.int64)
    reached: dict[str, np.ndarray] = {}                  # answer column -> (n, V) who gave it
    active = np.arange(max_vol)[None, :] < np.asarray(n_volunteers)[:, None]
    for q in _tree_order(questions):
        asked = active if q.parent is None else reached[q.parent]
        choice = _answers(rng, q, latents, truth, clarity, max_vol)
        for k, column in enumerate(q.columns):
            reached[column] = asked & (choice == k)
            votes[:, q.start + k] = reached[column].sum(1)
    return votes
