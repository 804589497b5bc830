"""Argument checks shared by the op wrappers: integer index tensors, one device for all arguments,
and locating the first offending entry for an error message."""

from __future__ import annotations

import torch
from torch import Tensor

#: Integer dtypes accepted for token ids and lengths (converted to int64 for the kernels).
INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_index_tensor(t: object, name: str, ranks: int | tuple[int, ...], shape: str) -> Tensor:
    """``t`` as int64, after checking that it is an integer tensor of one of ``ranks``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}, got {type(t).__name__}")
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
