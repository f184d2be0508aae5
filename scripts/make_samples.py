"""Regenerate the bundled samples in finetune_cli/samples/ from the real data sets.

    python scripts/make_samples.py ../shared/data

Each sample is real, label-stratified and deterministic (seed 0): 2,000 train, 500 validation and
1,000 test examples. IMDB and AG News have no official validation split, so their validation
sample is carved from the official train split, disjoint from the train sample; SNLI's comes from
the official dev split. Files are gzip JSON Lines written with mtime=0 (reproducible sha256), and
README.md is rewritten with the counts and hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

from finetune_cli.data.files import read_json_rows
from finetune_cli.data.subsets import stratified_take
from finetune_cli.data.task import DATASETS

SEED = 0
N_TRAIN, N_VAL, N_TEST = 2000, 500, 1000
OUT = Path(__file__).resolve().parents[1] / "finetune_cli" / "samples"


def take(rows: list[dict], n: int) -> tuple[list[dict], list[dict]]:
    taken, rest = stratified_take([r["label"] for r in rows], n, SEED)
    return [rows[i] for i in taken], [rows[i] for i in rest]


def write(rows: list[dict], path: Path) -> str:
    payload = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows).encode("ascii")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(src: Path) -> None:
    table = []
    for name, spec in DATASETS.items():
        train = read_json_rows(src / name / "train.jsonl.gz")
        test = read_json_rows(src / name / "test.jsonl.gz")
        if spec.has_validation:
            val_pool = read_json_rows(src / name / "validation.jsonl.gz")
            train_s, _ = take(train, N_TRAIN)
            val_s, _ = take(val_pool, N_VAL)
        else:  # validation carved from official train, disjoint from the train sample
            both, _ = take(train, N_TRAIN + N_VAL)
            val_s, train_s = take(both, N_VAL)
        test_s, _ = take(test, N_TEST)
        (OUT / name).mkdir(parents=True, exist_ok=True)
        for split, rows in (("train", train_s), ("validation", val_s), ("test", test_s)):
            digest = write(rows, OUT / name / f"{split}.jsonl.gz")
            counts = Counter(r["label"] for r in rows)
            labels = ", ".join(f"{lab}={spec.label_names[lab]}: {counts[lab]}" for lab in sorted(counts))
            table.append(f"| `{name}/{split}.jsonl.gz` | {len(rows)} | {labels} | `{digest}` |")
    readme = (OUT / "README.md").read_text(encoding="utf-8")
    head, _, _ = readme.partition("<!-- table -->")
    rows = "\n".join(["| file | rows | label counts | sha256 |", "|---|---|---|---|", *table])
    (OUT / "README.md").write_text(f"{head}<!-- table -->\n{rows}\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
