"""Worker processes of the 2-process (gloo) tests, spawned with ``torch.multiprocessing.spawn``.

:func:`run_gloo_worker` joins a file-store process group, runs ``body(context, *args)``, and leaves
without interpreter finalisation: once every rank has passed a barrier and the group is destroyed
it calls ``os._exit``.  Letting Python tear down a process whose gloo threads or DDP reducer still
hold work can abort it (``terminate called without an active exception``, SIGABRT) after the test's
work was done and written; such a crash says nothing about the code under test.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from mple_metrics.train.distributed import DistributedContext


def run_gloo_worker(rank: int, world_size: int, store: str, body: Callable[..., Any], *args: Any) -> None:
    """One rank: ``body(context, *args)`` on one thread; exit status 1 (traceback on stderr) when it
    raises, 0 when every rank finished."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        body(DistributedContext(rank=rank, world_size=world_size, local_rank=rank, device=torch.device("cpu")),
             *args)
        gc.collect()  # free the DDP model and its reducer while the group still exists
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        traceback.print_exc()
        exit_now(1)
    exit_now(0)


def exit_now(status: int) -> None:
    """Flush and leave the worker process with ``status``, skipping interpreter teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
