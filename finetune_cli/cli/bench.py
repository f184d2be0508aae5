"""`ftcli bench`: training / evaluation throughput, peak memory and MFU of each mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError
from ..methods.registry import names_where
from . import METHOD_LIST, app, err, one_line_errors, out, print_table


@app.command(epilog="Examples:\n\n  ftcli bench --steps 10\n\n"
                    "  ftcli bench --model tiny-random-bert --seq 16 --batch 4 --steps 2 --bottleneck 8")
@one_line_errors
def bench(
    modes: Annotated[str, typer.Option(help=f"Comma-separated modes ({METHOD_LIST}), measured next to the plain "
                                            "HF reference.")] = ",".join(names_where("benched")),
    seq: Annotated[int, typer.Option(help="Tokens per example (real examples, truncated, no padding).")] = 128,
    batch: Annotated[int, typer.Option(help="Training batch size.")] = 16,
    steps: Annotated[int, typer.Option(help="Timed training steps per contender (interleaved).")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up steps per contender.")] = 2,
    eval_batch: Annotated[int, typer.Option(help="Evaluation batch size.")] = 64,
    bottleneck: Annotated[int, typer.Option(help="Adapter bottleneck m.")] = 64,
    model: Annotated[str, typer.Option(help="Backbone: minilm-l6, tiny-random-bert or a HF id.")] = "minilm-l6",
    dataset: Annotated[str, typer.Option(help="Bundled sample the inputs come from: imdb, snli, ag_news.")]
        = "imdb",
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: torch's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    memory: Annotated[bool, typer.Option(help="Measure peak training memory (one child process each).")] = True,
    out_file: Annotated[Path, typer.Option("--out", help="Where the JSON result goes.")] = Path("bench.json"),
    precision: Annotated[str, typer.Option(help="Comma-separated precisions every contender is timed in: fp32, "
                                                "bf16 (autocast; columns × fp32 compare them).")] = "fp32",
    gemm_sizes: Annotated[Optional[str], typer.Option(help="Square GEMM sizes n whose best rate is the MFU "
                                                           "bound (default 1024,2048,4096 on CPU).")] = None,
    peers: Annotated[Optional[str], typer.Option(help="Also the libraries' own loops: peft (PEFT LoRA, against "
                                                      "lora), adapterhub (Houlsby, against layerwise; `make "
                                                      "bench-peers`).")] = None,
    adapterhub_python: Annotated[str, typer.Option(help="Python of AdapterHub's environment (--peers "
                                                        "adapterhub).")] = ".venv-adapterhub/bin/python",
    profile: Annotated[int, typer.Option(min=0, help="Also profile this many training steps of each contender "
                                                     "(torch.profiler): the share of GEMMs, dropout, softmax, "
                                                     "LayerNorm, GELU, adapter ops, optimizer.")] = 0,
) -> None:
    """Training / evaluation throughput, peak memory and MFU of each mode vs the plain HF loop."""
    from ..bench.peers import parse_peers
    from ..bench.render import header_lines, render_peers, render_profile, render_table
    from ..bench.run import parse_modes, parse_precisions, run_bench, write_json

    result = run_bench(model=model, dataset=dataset, modes=parse_modes(modes), seq=seq, batch=batch, steps=steps,
                       warmup=warmup, eval_batch=eval_batch, bottleneck=bottleneck, threads=threads,
                       device=device, memory=memory, log=lambda msg: err.print(f"ftcli bench: {msg}", highlight=False),
                       gemm_sizes=parse_sizes(gemm_sizes), precisions=parse_precisions(precision),
                       peers=parse_peers(peers), adapterhub_python=adapterhub_python, profile=profile)
    for line in header_lines(result):
        out.print(line, highlight=False, soft_wrap=True)
    print_table(render_table(result))
    for extra in (render_peers(result), render_profile(result)):
        if extra is not None:
            print_table(extra)
    write_json(result, out_file)
    err.print(f"ftcli bench: wrote {out_file}", highlight=False)


def parse_sizes(text: str | None) -> tuple[int, ...] | None:
    """`--gemm-sizes 512,1024` as sizes (each 16..65536), or one line naming what is wrong."""
    if text is None:
        return None
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(16 <= n <= 65536 for n in sizes):
        raise ConfigError(f"--gemm-sizes: got {text!r}, expected comma-separated integers 16..65536")
    return sizes
