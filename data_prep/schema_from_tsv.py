"""Write ``configs/schema/campaigns/<campaign>.yaml`` from a schema TSV.

The TSV has columns: campaign, question, answers (space separated), parent answer column
('-' = always asked). Run once when a new release's schema arrives:
``python -m data_prep.schema_from_tsv SCHEMA.tsv configs/schema/campaigns``.
"""
import argparse
import csv
from pathlib import Path

import yaml


def read_tsv(path):
    campaigns = {}
    with open(path, newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            campaign, question, answers, parent = row
            campaigns.setdefault(campaign, []).append(
                {"name": question, "answers": answers.split(), "parent": None if parent == "-" else parent})
    return campaigns


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("tsv")
    ap.add_argument("out_dir")
    a = ap.parse_args(argv)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for campaign, questions in read_tsv(a.tsv).items():
        text = yaml.safe_dump({"name": campaign, "questions": questions}, sort_keys=False)
        (out / f"{campaign}.yaml").write_text(f"# generated from {Path(a.tsv).name}\n" + text)
        print(f"{campaign}: {len(questions)} questions")


if __name__ == "__main__":
    main()
