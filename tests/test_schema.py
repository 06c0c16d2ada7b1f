"""The GZ-Evo schema against the reference TSV, single-campaign schemas, ask probabilities, validation."""
import textwrap

import numpy as np
import pytest

from testpaths import FIXTURES
from hybridssl.schema import Schema, SchemaError, available_schemas, load_schema

REFERENCE_TSV = FIXTURES / "schema" / "gz_evo_v0.1_schema.tsv"


def reference_rows():
    """(campaign, question, answers, parent or None) per TSV line, in file order."""
    rows = []
    for line in REFERENCE_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        campaign, question, answers, parent = line.split("\t")
        rows.append((campaign, question, tuple(answers.split()), None if parent == "-" else parent))
    return rows


@pytest.fixture(scope="module")
def gz_evo():
    return load_schema("gz_evo_v0.1")


def test_gz_evo_equals_reference_tsv(gz_evo):
    rows = reference_rows()
    assert gz_evo.n_questions == len(rows) == 65
    assert gz_evo.n_answers == 206
    assert gz_evo.label_cols == [f"{q}_{a}" for _, q, answers, _ in rows for a in answers]
    assert [(q.campaign, q.name, q.answers, q.parent) for q in gz_evo.questions] == rows
    assert gz_evo.campaigns == ["dr12", "dr5", "dr8", "gz2", "candels", "hubble"]
    assert "bar-dr5_strong" in gz_evo.column_index


def test_column_ranges_and_indices_are_consistent(gz_evo):
    for qi, q in enumerate(gz_evo.questions):
        assert gz_evo.label_cols[q.start:q.end] == q.columns
        assert np.all(gz_evo.question_index[q.start:q.end] == qi)
        assert gz_evo.campaigns[gz_evo.campaign_index[qi]] == q.campaign
    assert gz_evo.questions[-1].end == gz_evo.n_answers


@pytest.mark.parametrize("campaign", ["dr12", "dr5", "dr8", "gz2", "candels", "hubble"])
def test_single_campaign_schemas_are_slices_of_gz_evo(gz_evo, campaign):
    matches = [n for n in available_schemas() if load_schema(n).campaigns == [campaign]]
    assert len(matches) == 1, f"one shipped single-campaign schema for {campaign}, got {matches}"
    single = load_schema(matches[0])
    assert single.label_cols == gz_evo.campaign_columns(campaign)
    expected = [(q.name, q.answers, q.parent) for q in gz_evo.questions if q.campaign == campaign]
    assert [(q.name, q.answers, q.parent) for q in single.questions] == expected
    assert single.questions[0].start == 0


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# q3 is listed before its parent q2: ask_probability must not depend on file order
SMALL = """\
    name: small
    campaigns:
    - name: c
      questions:
      - {name: q1-c, answers: [a, b, c], parent: null}
      - {name: q3-c, answers: [x, y], parent: q2-c_yes}
      - {name: q2-c, answers: ['yes', 'no'], parent: q1-c_b}
      - {name: q4-c, answers: [m, n], parent: null}
    """


def test_ask_probability_is_product_of_parent_fractions(tmp_path):
    schema = load_schema(write(tmp_path, "small.yaml", SMALL))
    assert schema.label_cols == ["q1-c_a", "q1-c_b", "q1-c_c", "q3-c_x", "q3-c_y",
                                 "q2-c_yes", "q2-c_no", "q4-c_m", "q4-c_n"]
    fractions = np.array([[0.2, 0.5, 0.3, 0.9, 0.1, 0.6, 0.4, 0.7, 0.3],
                          [0.0, 1.0, 0.0, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5]])
    # by hand: q1 root; q3 = P(q1 b) * P(q2 yes); q2 = P(q1 b); q4 root
    expected = np.array([[1, 0.5 * 0.6, 0.5, 1],
                         [1, 1.0 * 0.25, 1.0, 1]])
    np.testing.assert_allclose(schema.ask_probability(fractions), expected)
    stacked = schema.ask_probability(np.stack([fractions, fractions[::-1]]))
    assert stacked.shape == (2, 2, 4)
    np.testing.assert_allclose(stacked[1], expected[::-1])
    with pytest.raises(ValueError, match="9"):
        schema.ask_probability(fractions[:, :5])


def test_ask_probability_on_gz_evo_follows_the_tree(gz_evo):
    rng = np.random.default_rng(0)
    fractions = rng.uniform(0, 1, (3, gz_evo.n_answers))
    p = gz_evo.ask_probability(fractions)
    col = gz_evo.column_index
    qi = {q.name: i for i, q in enumerate(gz_evo.questions)}
    for i, q in enumerate(gz_evo.questions):
        if q.parent is None:
            assert np.all(p[:, i] == 1)
    # bar-dr12 is asked after disk-edge-on-dr12 "no", itself after smooth-or-featured-dr12 "featured"
    by_hand = fractions[:, col["smooth-or-featured-dr12_featured-or-disk"]] * fractions[:, col["disk-edge-on-dr12_no"]]
    np.testing.assert_allclose(p[:, qi["bar-dr12"]], by_hand)


def test_campaigns_by_name_and_inline_give_the_same_schema(tmp_path):
    write(tmp_path, "campaigns/c.yaml", """\
        name: c
        questions:
        - {name: q1-c, answers: [a, b], parent: null}
        - {name: q2-c, answers: [x, y, z], parent: q1-c_a}
        """)
    write(tmp_path, "campaigns/d.yaml", """\
        name: d
        questions:
        - {name: q1-d, answers: [a, b], parent: null}
        """)
    by_name = load_schema(write(tmp_path, "two.yaml", "name: two\ncampaigns: [c, d]\n"))
    inline = load_schema(write(tmp_path, "inline.yaml", """\
        name: inline
        campaigns:
        - name: c
          questions:
          - name: q1-c
            answers: [a, b]
            parent: null
          - {name: q2-c, parent: q1-c_a, answers: [x, y, z]}
        - {name: d, questions: [{name: q1-d, answers: [a, b]}]}
        """))
    assert by_name.campaigns == ["c", "d"]
    assert by_name.label_cols == inline.label_cols == ["q1-c_a", "q1-c_b", "q2-c_x", "q2-c_y", "q2-c_z",
                                                       "q1-d_a", "q1-d_b"]
    assert by_name.hash == inline.hash
    assert by_name.campaign_columns("d") == ["q1-d_a", "q1-d_b"]
    changed = Schema("x", {"c": [{"name": "q1-c", "answers": ["a", "b"]},
                                 {"name": "q2-c", "answers": ["x", "y", "z"], "parent": "q1-c_b"}],
                           "d": [{"name": "q1-d", "answers": ["a", "b"]}]})
    assert changed.hash != by_name.hash


@pytest.mark.parametrize("questions, message", [
    ("- {name: q1-c, answers: [a, b]}\n- {name: q1-c, answers: [b, c]}", "duplicate column 'q1-c_b'"),
    ("- {name: q1-c, answers: [a, b, a]}", "duplicate column 'q1-c_a'"),
    ("- {name: q1-c, answers: [a, b]}\n- {name: q2-c, answers: [x, y], parent: q1-c_z}",
     "q2-c.*parent answer 'q1-c_z'"),
    ("- {name: q1-c, answers: [a, b], parent: q2-c_x}\n- {name: q2-c, answers: [x, y], parent: q1-c_a}",
     "cycle.*q1-c -> q2-c -> q1-c"),
    ("- {name: q1-c, answers: [a, b], parent: q1-c_a}", "cycle"),
    ("- {name: q1-c, answers: [a]}", "q1-c.*at least 2 answers"),
    ("- {name: q1-c}", "'answers'"),
])
def test_inconsistent_schemas_are_refused(tmp_path, questions, message):
    body = "name: bad\ncampaigns:\n- name: c\n  questions:\n" + textwrap.indent(questions, "  ") + "\n"
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(SchemaError, match=message):
        load_schema(path)


def test_bad_files_and_names_are_refused(tmp_path):
    with pytest.raises(SchemaError, match="unknown schema 'nope'.*gz_evo_v0.1"):
        load_schema("nope")
    with pytest.raises(SchemaError, match="campaign 'zz' has no file"):
        load_schema(write(tmp_path, "a.yaml", "campaigns: [zz]\n"))
    with pytest.raises(SchemaError, match="needs a 'campaigns' list"):
        load_schema(write(tmp_path, "b.yaml", "name: b\n"))
    with pytest.raises(SchemaError, match="listed twice"):
        write(tmp_path, "campaigns/c.yaml", "name: c\nquestions: [{name: q-c, answers: [a, b]}]\n")
        load_schema(write(tmp_path, "c2.yaml", "campaigns: [c, c]\n"))
    with pytest.raises(SchemaError, match="not a mapping"):
        load_schema(write(tmp_path, "list.yaml", "- 1\n- 2\n"))
    with pytest.raises(SchemaError, match="unknown campaign 'zz'"):
        load_schema("gz2").campaign_columns("zz")
