"""What the cheaper dropout masks (finetune_cli/models/dropout.py) buy: each mode's training step
with them (the product) and with torch's own dropout and SDPA (the stock model), the same weights,
the same batches, interleaved steps, per precision. Prints the median step times and the ratio.

    python benchmarks/dropout_masks.py --threads 1 --steps 8 --modes full,layerwise,lora
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from finetune_cli.bench.contenders import build, make_inputs, tokenizer_for
from finetune_cli.models.dropout import use_torch_dropout
from finetune_cli.runs.artifacts import autocast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--modes", default="full,layerwise,lora")
    parser.add_argument("--precision", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, tmp = torch.device("cpu"), Path(tempfile.mkdtemp())
    inputs = make_inputs(tokenizer_for(args.model), "imdb", args.seq, args.batch, 8)
    print(f"{args.model}, seq {args.seq}, batch {args.batch}, {torch.get_num_threads()} thread(s), {args.steps} "
          f"timed steps (+1 warm-up) each, interleaved")
    print("| mode | precision | torch dropout s/step | ftcli masks s/step | speed-up |")
    print("|---|---|---|---|---|")
    for mode in args.modes.split(","):
        ours = build(mode, args.model, 64, inputs.num_labels, 0, device, tmp)
        theirs = build(mode, args.model, 64, inputs.num_labels, 0, device, tmp)
        use_torch_dropout(theirs.model)
        for precision in args.precision.split(","):
            times = {"ours": [], "theirs": []}
            for r in range(1 + args.steps):
                batch = inputs.train[r % len(inputs.train)]
                for key, c in (("theirs", theirs), ("ours", ours)):
                    with autocast(device, precision):
                        start = time.perf_counter()
                        c.step(batch)
                        if r:
                            times[key].append(time.perf_counter() - start)
            a, b = statistics.median(times["theirs"]), statistics.median(times["ours"])
            print(f"| {mode} | {precision} | {a:.3f} | {b:.3f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
