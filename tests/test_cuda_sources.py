"""Host synchronisation and launch checks of the CUDA code: static checks of the sources (they run
on the CPU, so they hold without a GPU), and, on a GPU, a count of the syncs each op makes.

- No device-to-host synchronisation inside an op: ``.item()``, ``.cpu()``, ``.to(kCPU)``,
  ``cudaDeviceSynchronize`` or ``cudaStreamSynchronize`` would block the host on every call
  (DESIGN.md §5); data-dependent errors go through status tensors or the Python wrappers.
- Every kernel launch is followed by ``C10_CUDA_KERNEL_LAUNCH_CHECK()`` before the next statement
  that could hide its error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CUDA_DIR = Path(__file__).resolve().parent.parent / "csrc" / "cuda"
SOURCES = sorted(CUDA_DIR.glob("*.cu"))
HOST_SYNCS = (r"\.item\s*[<(]", r"\.cpu\s*\(", r"\.to\s*\(\s*(at::)?kCPU", r"cudaDeviceSynchronize",
              r"cudaStreamSynchronize", r"\.synchronize\s*\(")


def _code(path: Path) -> str:
    """The source without comments (a comment may mention what the code must not do)."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_there_are_cuda_sources():
    assert {p.name for p in SOURCES} >= {"axe_cuda.cu", "bleu_cuda.cu", "lap_cuda.cu"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_host_synchronisation(path):
    code = _code(path)
    found = [pattern for pattern in HOST_SYNCS if re.search(pattern, code)]
    assert not found, f"{path.name} synchronises with the host: {found}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_launch_is_checked(path):
    code = _code(path)
    launches = [m.end() for m in re.finditer(r">>>\s*\(", code)]
    assert launches, f"{path.name} launches no kernel"
    for end in launches:
        statement_end = code.index(";", end)  # the end of the launch statement
        following = code[statement_end + 1:].lstrip()
        assert following.startswith("C10_CUDA_KERNEL_LAUNCH_CHECK()"), (
            f"{path.name}: the launch ending at offset {statement_end} is not followed by "
            f"C10_CUDA_KERNEL_LAUNCH_CHECK(); next: {following[:60]!r}")


def test_the_checks_can_fail(tmp_path):
    # The same checks on a source with a host sync and an unchecked launch must find both.
    bad = tmp_path / "bad.cu"
    bad.write_text("void f(at::Tensor t) { k<<<1, 32>>>(t.data_ptr<float>()); float x = t.item<float>(); }\n")
    code = _code(bad)
    assert any(re.search(p, code) for p in HOST_SYNCS)
    end = code.index(";", re.search(r">>>\s*\(", code).end())
    assert not code[end + 1:].lstrip().startswith("C10_CUDA_KERNEL_LAUNCH_CHECK()")


def _host_syncs(call) -> int:
    """How many times ``call()`` synchronises the host with the GPU (torch's sync debug mode warns
    once per synchronising operation)."""
    import warnings

    import torch

    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.cuda
def test_ops_synchronise_the_host_at_most_as_documented():
    import torch

    from mple_metrics.ops import axe_align, axe_loss, linear_sum_assignment, oaxe_loss, sentence_bleu
    from mple_metrics.testing import cuda_usable
    if not cuda_usable():
        pytest.skip("no GPU available")
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(8, 12, 20, generator=g), -1).cuda()
    targets = torch.randint(1, 20, (8, 10), generator=g).cuda()
    lengths = torch.full((8,), 10).cuda()
    # AXE: one stacked argument check, one NaN check of the loss.
    assert _host_syncs(lambda: axe_loss(lp, targets, blank=0)) <= 2
    assert _host_syncs(lambda: axe_align(lp, targets, blank=0)) <= 2
    # BLEU: one stacked length check; scores stay on the device.
    hyps = torch.randint(0, 9, (64, 20), generator=g).cuda()
    refs = torch.randint(0, 9, (64, 2, 20), generator=g).cuda()
    assert _host_syncs(lambda: sentence_bleu(hyps, refs)) <= 1
    # Linear assignment: one read of the status; OaXE: its argument check plus that read.
    assert _host_syncs(lambda: linear_sum_assignment(torch.rand(8, 10, 10, generator=g).cuda())) <= 1
    assert _host_syncs(lambda: oaxe_loss(lp[:, :10], targets, lengths)) <= 2


def test_pairwise_bleu_has_no_cuda_only_length_limit():
    """Long candidates raise the kernel's shared-memory limit or fall back to global scratch, so the
    CUDA op accepts every width the CPU op accepts."""
    code = _code(CUDA_DIR / "bleu_cuda.cu")
    assert "cudaFuncAttributeMaxDynamicSharedMemorySize" in code and "scratch" in code
    assert "supports candidates of up to" not in code
