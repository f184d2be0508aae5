"""Whether the Hugging Face Hub can be reached, asked before any Hub client retries: the data path and
the model path fail (or fall back) at once on an offline machine. Torch-free, at the bottom layer."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from .errors import ModelError

MINILM = "minilm-l6"  # model.name of the backbone shipped on PyPI (models/backbones.py)
MPNET = "mpnet-base"  # model.name of the backbone `make models` unpacks
TINY_PREFIX = "tiny-random-"  # model.name prefix of the tiny models built in code (models/tiny.py)


def hub_offline_reason() -> str | None:
    """Why the Hub cannot be reached right now (None when it may be): offline mode set, or its
    host name does not resolve. Checked first so that an offline machine falls back at once
    instead of after the Hub client's retries (~25 s of `Retrying...` lines)."""
    if any(os.environ.get(k, "") not in ("", "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return None  # offline mode: datasets reads its local cache only, which may hold the data
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        return f"{host} does not resolve ({e.strerror or e}); offline?"
    return None


def offline_model_error(name: str, reason: str) -> ModelError:
    """The one line for a Hub model that cannot be had: the Hub unreachable (`reason`), no cached copy."""
    return ModelError(f"model.name: cannot load {name!r} from the Hugging Face Hub: {reason}; use a local "
                      "folder (save_pretrained) or a model of `make models`")


def check_model_name(name: str) -> None:
    """A Hub model on a machine without the Hub and without a cached copy stops here, without importing
    torch or transformers (in a second, not after the imports and the Hub client's retries)."""
    if name in (MINILM, MPNET) or name.startswith(TINY_PREFIX) or os.path.exists(os.path.expanduser(name)):
        return
    reason = hub_offline_reason()
    if reason is None:
        return
    from huggingface_hub import try_to_load_from_cache  # light (no torch); only for a Hub id offline

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id either: the loader's own error says so later
        return
    if not isinstance(cached, str):
        raise offline_model_error(name, reason)
