"""The extension reports how it was built, and its ops are registered for the CPU."""

import torch

import mple_metrics


def test_build_info():
    info = mple_metrics.build_info()
    assert info["cpu"] is True
    assert isinstance(info["cuda"], bool) and isinstance(info["openmp"], bool)
    assert info["torch"] == torch.__version__
    if info["cuda"] is False:
        assert not torch._C._dispatch_has_kernel_for_dispatch_key("mple::bleu_stats", "CUDA")


def test_every_op_has_a_cpu_kernel():
    ops = [name for name in torch._C._dispatch_get_all_op_names() if name.startswith("mple::")]
    assert "mple::bleu_stats" in ops
    assert all(torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU") for op in ops)


def test_cpu_kernels_are_parallel():
    # at::parallel_for only runs in parallel when the extension is compiled with OpenMP.
    assert mple_metrics.build_info()["openmp"] is True
