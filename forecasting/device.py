"""Device and precision, decided once at the top of training."""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn


def pick_device(preferred: str | None = None) -> torch.device:
    """CUDA, then MPS, then CPU, unless ``preferred`` names one ("cpu", "cuda:1", ...)."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision training on ``device`` runs in: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 on a CUDA device that computes it natively (Ampere and later), else fp32:
    fp16 needs loss scaling and bf16 emulated on older GPUs is slower than fp32, so both are
    asked for by name. On the CPU, whether a cell has a bf16 or fp16 kernel depends on the
    processor (oneDNN's bf16 LSTM needs AVX512-BF16 or AMX; fp16 has no CPU LSTM kernel at
    all): :func:`check_cpu_autocast` asks the processor before training starts.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "auto":
        native_bf16 = cuda and torch.cuda.is_bf16_supported(including_emulation=False)
        return "bf16" if native_bf16 else "fp32"
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{device} cannot compute in bf16; use precision fp16 or fp32")
    return precision


CELLS: dict[str, type[nn.RNN] | type[nn.LSTM] | type[nn.GRU]] = {
    "rnn": nn.RNN,
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


@functools.cache
def cpu_autocast_error(cell: str, precision: str) -> str | None:
    """Why ``cell`` (rnn, lstm, gru) cannot train under CPU autocast to ``precision`` here,
    or None if it can.

    Asked by running one tiny forward and backward pass: oneDNN decides per processor, and
    the only answer that cannot be wrong is the kernel's own.
    """
    probe = CELLS[cell](input_size=2, hidden_size=2, batch_first=True)
    x = torch.zeros(1, 3, 2)
    try:
        with torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision]):
            out, _ = probe(x)
        out.float().sum().backward()
    except RuntimeError as err:
        return str(err).splitlines()[0]
    return None


def check_cpu_autocast(model: nn.Module, precision: str) -> None:
    """Raise ValueError, naming the cell and the setting, if ``model`` cannot train in
    ``precision`` on this CPU; a no-op for fp32."""
    if precision == "fp32":
        return
    used = {n for n, c in CELLS.items() for m in model.modules() if type(m) is c}
    for cell in sorted(used):
        error = cpu_autocast_error(cell, precision)
        if error is not None:
            raise ValueError(
                f"precision {precision!r}: this CPU has no {precision} kernel for the "
                f"{cell.upper()} cell ({error}); set the training precision to 'fp32' or 'auto'"
            )


def training_precision(precision: str, device: torch.device, model: nn.Module) -> str:
    """The resolved precision ``model`` trains in on ``device``, checked against the CPU's
    kernels there (:func:`check_cpu_autocast`)."""
    resolved = resolve_precision(precision, device)
    if device.type == "cpu":
        check_cpu_autocast(model, resolved)
    return resolved


def autocast_context(
    device: torch.device, precision: str = "auto"
) -> AbstractContextManager[object]:
    """Autocast to the resolved ``precision`` on ``device``; full precision for fp32."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[resolved])


def flush_denormals() -> bool:
    """Treat subnormal floats as zero on the CPU (FTZ/DAZ), as TensorFlow does by default.

    Gradients that fade through a long window reach subnormal magnitudes (below 1.2e-38),
    and x86 arithmetic on those is up to a hundred times slower: a 168-step LSTM on 2 cores
    trained 13-20 % faster on M4 data with this, and 4x faster on noisy inputs. The setting
    is per thread and threads inherit it when they are created, so only fresh processes call
    this, before any torch work (the ``seqcast`` console script, the torchrun entry point,
    the benches): a process that turned it on later would compute with a mix of flushing
    and non-flushing threads, and its results would depend on which thread ran what.
    ``SEQCAST_FLUSH_DENORMAL=0`` keeps IEEE subnormals.
    Returns whether flushing is on.
    """
    if os.environ.get("SEQCAST_FLUSH_DENORMAL", "1") == "0":
        return False
    return bool(torch.set_flush_denormal(True))


def flushing_denormals() -> bool:
    """Whether this thread treats subnormal floats as zero."""
    return float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0
