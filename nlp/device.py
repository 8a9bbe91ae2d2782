"""Device and precision, decided once at the top of training (as in forecasting/device.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """CUDA, then MPS, then CPU, unless ``preferred`` names one ("cpu", "cuda:1", ...)."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device) -> AbstractContextManager[object]:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); full precision elsewhere."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)
