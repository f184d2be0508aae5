"""Draw the bundled samples of the two task types the presets do not cover: STS-B (regression,
GLUE) and GoEmotions (multi-label, 28 labels), from full real copies (seed 0, deterministic, gzip
with mtime 0), and print the rows of samples/README.md's table.

    python scripts/make_task_samples.py PATH/TO/data   # the folder holding glue/stsb/ and goemotions/
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "finetune_cli" / "samples"
SIZES = {"train": 600, "validation": 150, "test": 300}


def read(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path: Path, rows: list[dict]) -> str:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:
        f.write("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows).encode())
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def draw(rows: list[dict], n: int, seed: int) -> list[dict]:
    picked = sorted(random.Random(seed).sample(range(len(rows)), n))  # noqa: S311 - a reproducible draw
    return [rows[i] for i in picked]


def main(data: Path) -> None:
    stsb_train = read(data / "glue" / "stsb" / "train.jsonl.gz")
    picked = draw(stsb_train, SIZES["train"] + SIZES["validation"], 0)  # validation: disjoint, from train
    splits = {"stsb": {"train": picked[: SIZES["train"]], "validation": picked[SIZES["train"]:],
                       "test": draw(read(data / "glue" / "stsb" / "dev.jsonl.gz"), SIZES["test"], 0)}}
    go = data / "goemotions"
    splits["goemotions"] = {split: [{"text": r["text"], "labels": r["labels"]} for r in
                                    draw(read(go / f"{split}.jsonl.gz"), SIZES[split], 0)] for split in SIZES}
    for name, parts in splits.items():
        (OUT / name).mkdir(exist_ok=True)
        for split, rows in parts.items():
            digest = write(OUT / name / f"{split}.jsonl.gz", rows)
            print(f"| `{name}/{split}.jsonl.gz` | {len(rows)} | `{digest}` |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
