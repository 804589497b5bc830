"""Static checks of the CUDA sources (they run on the CPU, so they hold without a GPU).

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
