"""Regenerate examples/business_news.csv, the worked example of a task of your own.

    python scripts/make_example.py

A binary, imbalanced task that is none of the presets: "is this news article about business?",
drawn (seed 0) from the bundled AG News sample (finetune_cli/samples/ag_news, all three splits):
every Business article is a `business` row, every other one an `other` row, and the business rows
are thinned to 10% of the file, as in many real detection tasks where the class of interest is rare.
One CSV file with the columns a labelling tool might export (`article`, `topic`), string labels, no
split: ftcli carves validation and test from it. Same provenance and terms as the AG News sample
(finetune_cli/samples/README.md: research, non-commercial).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from finetune_cli.data.files import read_json_rows
from finetune_cli.data.sources import sample_dir

SEED, N_OTHER, BUSINESS_SHARE = 0, 1800, 0.10
BUSINESS = 2  # AG News label id of Business
OUT = Path(__file__).resolve().parents[1] / "examples" / "business_news.csv"


def main() -> None:
    rows = [r for split in ("train", "validation", "test")
            for r in read_json_rows(sample_dir("ag_news") / f"{split}.jsonl.gz")]
    rng = random.Random(SEED)  # noqa: S311 - a reproducible draw, not a secret
    other = rng.sample([r for r in rows if r["label"] != BUSINESS], N_OTHER)
    n_business = round(N_OTHER * BUSINESS_SHARE / (1 - BUSINESS_SHARE))
    business = rng.sample([r for r in rows if r["label"] == BUSINESS], n_business)
    table = [{"article": " ".join(r["text"].split()), "topic": "business" if r["label"] == BUSINESS else "other"}
             for r in other + business]
    rng.shuffle(table)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["article", "topic"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {OUT}: {len(table)} rows ({n_business} business, {N_OTHER} other)")


if __name__ == "__main__":
    main()
