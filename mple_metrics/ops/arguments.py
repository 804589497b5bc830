"""Argument checks shared by the op wrappers: integer index tensors, one device for all arguments,
bool flags, tensors that hold data, the memory a buffer needs, and locating the first offending
entry for an error message."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

#: Integer dtypes accepted for token ids and lengths (converted to int64 for the kernels).
INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_data_device(t: Tensor, name: str) -> None:
    """The ops read values (lengths, ids, statistics), so a tensor without data is refused by name."""
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no data; the ops need values "
                         "(use a cpu or cuda tensor)")


def check_flag(value: object, name: str) -> bool:
    """A bool option: True or False (numpy bools too), never a truthy string or number."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_index_tensor(t: object, name: str, ranks: int | tuple[int, ...], shape: str) -> Tensor:
    """``t`` as int64, after checking that it is an integer tensor of one of ``ranks`` with data."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}, got {type(t).__name__}")
    check_data_device(t, name)
    if t.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be an integer tensor (int64 or int32), got {t.dtype}")
    if t.dim() not in ((ranks,) if isinstance(ranks, int) else ranks):
        raise ValueError(f"{name} must have shape {shape}, got shape {tuple(t.shape)}")
    return t.long()


def check_same_device(t: Tensor, ref: Tensor, name: str, ref_name: str) -> None:
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; "
                         "all arguments must be on one device")


def first_index(mask: Tensor) -> tuple[int, ...]:
    """Index of the first True entry of a boolean mask that has one (one host sync on CUDA)."""
    return tuple(int(i) for i in mask.nonzero()[0])


def device_memory_bytes(device: torch.device) -> int:
    """Total memory of ``device``: physical memory for the CPU, the card's memory for CUDA."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):  # pragma: no cover - platforms without sysconf
        return 2**63 - 1


def check_fits_in_memory(nbytes: int, device: torch.device, op: str, what: str) -> None:
    """A ValueError, before allocating, for a buffer larger than the device's whole memory (the same
    rule as csrc/include/mple/memory.h), instead of the allocator's own out-of-memory dump."""
    capacity = device_memory_bytes(device)
    if nbytes > capacity:
        raise ValueError(f"{op}: {what} would need {nbytes / 2**30:.2f} GiB, more than the "
                         f"{capacity / 2**30:.2f} GiB of {'GPU' if device.type == 'cuda' else 'host'} "
                         "memory; use a smaller batch or smaller sizes")
