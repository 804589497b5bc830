"""The CUDA backend's warp solver (csrc/include/mple/lap_warp.h), run on the CPU against an emulated warp.

No GPU is needed: the header is compiled by the host C++ compiler with the four warp primitives
(warp_sync, warp_any, warp_shfl_xor, warp_broadcast_lane0) emulated by 32 std::threads per problem that
meet at a barrier, so lanes really run concurrently between synchronisation points (a missing
warp_sync shows up as a race).  The emulated kernel must return exactly what the CPU op returns:
the same assignment, bit for bit, and the same status codes.  Skipped without a C++ compiler.
"""

from __future__ import annotations

import ctypes
import math
import secrets
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import mple_metrics.ops  # noqa: F401  (registers torch.ops.mple)

HARNESS = r"""
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mple {
// One emulated warp: a reusable barrier for 32 threads plus one 8-byte exchange slot per lane.
struct EmulatedWarp {
  std::mutex mutex;
  std::condition_variable all_arrived;
  int arrived = 0;
  uint64_t generation = 0;
  uint64_t slots[32] = {};

  // Lanes that disagree on control flow would wait forever: give up after a few seconds instead, so
  // the test fails (status kDiverged) rather than hangs.
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex);
    const uint64_t my_generation = generation;
    if (++arrived == 32) {
      arrived = 0;
      ++generation;
      all_arrived.notify_all();
    } else if (!all_arrived.wait_for(lock, std::chrono::seconds(1),
                                     [&] { return generation != my_generation; })) {
      throw std::runtime_error("lanes diverged: not all 32 reached the same warp_sync");
    }
  }
};
thread_local EmulatedWarp* this_warp = nullptr;
thread_local int this_lane = 0;

template <typename T> uint64_t to_bits(T value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <typename T> T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
inline void warp_sync() { this_warp->barrier(); }
template <typename T> T warp_shfl_xor(T value, int lane_mask) {
  static_assert(sizeof(T) <= 8, "8-byte slots");
  this_warp->slots[this_lane] = to_bits(value);
  this_warp->barrier();
  const uint64_t other = this_warp->slots[this_lane ^ lane_mask];
  this_warp->barrier();
  return from_bits<T>(other);
}
template <typename T> T warp_broadcast_lane0(T value) {
  this_warp->slots[this_lane] = to_bits(value);
  this_warp->barrier();
  const uint64_t lane0 = this_warp->slots[0];
  this_warp->barrier();
  return from_bits<T>(lane0);
}
inline bool warp_any(bool predicate) {
  this_warp->slots[this_lane] = predicate ? 1 : 0;
  this_warp->barrier();
  bool any = false;
  for (int lane = 0; lane < 32; ++lane) any = any || this_warp->slots[lane] != 0;
  this_warp->barrier();
  return any;
}
}  // namespace mple

#define MPLE_LAP_WARP_EMULATION
#include "mple/lap_warp.h"

constexpr int32_t kDiverged = -100;

template <typename scalar_t>
void emulate(const scalar_t* cost, int64_t batch, int64_t rows, int64_t cols, const int64_t* row_len,
             const int64_t* col_len, int64_t* assignment, int32_t* status) {
  const int64_t bytes = std::max<int64_t>(8, mple::state_bytes(rows, cols));
  std::vector<uint64_t> state((bytes + 7) / 8);
  for (int64_t b = 0; b < batch; ++b) {
    mple::EmulatedWarp warp;
    std::vector<std::thread> lanes;
    std::atomic<bool> diverged{false};
    for (int lane = 0; lane < 32; ++lane) {
      lanes.emplace_back([&, lane] {
        mple::this_warp = &warp;
        mple::this_lane = lane;
        try {
          mple::warp_solve_problem(cost, row_len, col_len, b, rows, cols,
                                   reinterpret_cast<unsigned char*>(state.data()), assignment,
                                   status, lane);
        } catch (const std::runtime_error&) {
          diverged = true;
        }
      });
    }
    for (auto& t : lanes) t.join();
    if (diverged) {  // stop at the first divergence: later problems would each wait for timeouts
      std::fill(status + b, status + batch, kDiverged);
      return;
    }
  }
}

// The kernel's layout of problems over blocks (mple::lap_launch_shape, mple::lap_problem_state):
// `warps_per_block` warps of 32 threads per block, every warp its own problem, the states in one
// shared buffer per block or in a global workspace, with the shared-memory budget a parameter so that
// small problems take the 1-, 2-, 3-warp and global paths.  Reports the path taken in `layout`:
// warps per block, negative for the global workspace.
template <typename scalar_t>
void emulate_layout(const scalar_t* cost, int64_t batch, int64_t rows, int64_t cols, const int64_t* row_len,
                    const int64_t* col_len, int64_t* assignment, int32_t* status, int64_t shared_budget,
                    int max_warps, int32_t* layout) {
  const int64_t bytes = std::max<int64_t>(8, mple::state_bytes(rows, cols));
  const mple::LapLaunchShape shape = mple::lap_launch_shape(bytes, shared_budget, max_warps);
  const int warps_per_block = shape.warps_per_block;
  *layout = shape.in_shared ? warps_per_block : -warps_per_block;
  std::vector<uint64_t> global(shape.in_shared ? 1 : (batch * bytes + 7) / 8, 0x5a5a5a5a5a5a5a5aULL);
  for (int64_t block = 0; block * warps_per_block < batch; ++block) {
    std::vector<uint64_t> shared(shape.in_shared ? (warps_per_block * bytes + 7) / 8 : 1, 0xa5a5a5a5a5a5a5a5ULL);
    std::vector<mple::EmulatedWarp> warps(warps_per_block);
    std::vector<std::thread> threads;
    std::atomic<bool> diverged{false};
    for (int warp = 0; warp < warps_per_block; ++warp) {
      for (int lane = 0; lane < 32; ++lane) {
        threads.emplace_back([&, warp, lane] {
          const int64_t b = block * warps_per_block + warp;
          if (b >= batch) return;  // as the kernel: uniform across the warp
          mple::this_warp = &warps[warp];
          mple::this_lane = lane;
          unsigned char* base = mple::lap_problem_state(
              reinterpret_cast<unsigned char*>(shared.data()),
              shape.in_shared ? nullptr : reinterpret_cast<unsigned char*>(global.data()), b, warp, bytes);
          try {
            mple::warp_solve_problem(cost, row_len, col_len, b, rows, cols, base, assignment, status, lane);
          } catch (const std::runtime_error&) {
            diverged = true;
          }
        });
      }
    }
    for (auto& t : threads) t.join();
    if (diverged) {
      std::fill(status + block * warps_per_block, status + batch, kDiverged);
      return;
    }
  }
}

extern "C" int32_t layout_of(int64_t rows, int64_t cols, int64_t shared_budget, int max_warps) {
  const mple::LapLaunchShape shape =
      mple::lap_launch_shape(std::max<int64_t>(8, mple::state_bytes(rows, cols)), shared_budget, max_warps);
  return shape.in_shared ? shape.warps_per_block : -shape.warps_per_block;
}

extern "C" int64_t state_bytes_of(int64_t rows, int64_t cols) { return mple::state_bytes(rows, cols); }

extern "C" void emulate_layout_f64(const double* cost, int64_t batch, int64_t rows, int64_t cols,
                                   const int64_t* row_len, const int64_t* col_len, int64_t* assignment,
                                   int32_t* status, int64_t shared_budget, int max_warps, int32_t* layout) {
  emulate_layout(cost, batch, rows, cols, row_len, col_len, assignment, status, shared_budget, max_warps, layout);
}

extern "C" void emulate_f64(const double* cost, int64_t batch, int64_t rows, int64_t cols,
                            const int64_t* row_len, const int64_t* col_len, int64_t* assignment,
                            int32_t* status) {
  emulate(cost, batch, rows, cols, row_len, col_len, assignment, status);
}
extern "C" void emulate_f32(const float* cost, int64_t batch, int64_t rows, int64_t cols,
                            const int64_t* row_len, const int64_t* col_len, int64_t* assignment,
                            int32_t* status) {
  emulate(cost, batch, rows, cols, row_len, col_len, assignment, status);
}
"""

INCLUDE = Path(__file__).resolve().parents[1] / "csrc" / "include"


@pytest.fixture(scope="module")
def emulated_kernel(tmp_path_factory):
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler for the warp emulation")
    build = tmp_path_factory.mktemp("lap_warp_emulation")
    source = build / "harness.cpp"
    source.write_text(HARNESS)
    library = build / "harness.so"
    subprocess.run([compiler, "-O1", "-std=c++17", "-shared", "-fPIC", "-pthread", f"-I{INCLUDE}",
                    str(source), "-o", str(library)], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    for name in ("emulate_f64", "emulate_f32"):
        getattr(lib, name).argtypes = [pointer, i64, i64, i64, pointer, pointer, pointer, pointer]

    lib.emulate_layout_f64.argtypes = [pointer, i64, i64, i64, pointer, pointer, pointer, pointer, i64,
                                       ctypes.c_int, pointer]

    def run_layout(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, shared_budget: int,
                   max_warps: int = 4):
        cost = cost.double().contiguous()
        rows, cols = rows.long().contiguous(), cols.long().contiguous()
        assignment = torch.empty(cost.shape[:2], dtype=torch.int64)
        status = torch.empty(cost.shape[0], dtype=torch.int32)
        layout = torch.zeros(1, dtype=torch.int32)
        lib.emulate_layout_f64(cost.data_ptr(), cost.shape[0], cost.shape[1], cost.shape[2], rows.data_ptr(),
                               cols.data_ptr(), assignment.data_ptr(), status.data_ptr(), shared_budget,
                               max_warps, layout.data_ptr())
        return assignment, status, int(layout)

    def run(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
        cost = cost.contiguous()
        rows, cols = rows.long().contiguous(), cols.long().contiguous()
        assignment = torch.empty(cost.shape[:2], dtype=torch.int64)
        status = torch.empty(cost.shape[0], dtype=torch.int32)
        fn = lib.emulate_f64 if cost.dtype == torch.float64 else lib.emulate_f32
        fn(cost.data_ptr(), cost.shape[0], cost.shape[1], cost.shape[2], rows.data_ptr(),
           cols.data_ptr(), assignment.data_ptr(), status.data_ptr())
        return assignment, status

    lib.layout_of.argtypes = [i64, i64, i64, ctypes.c_int]
    lib.layout_of.restype = ctypes.c_int32
    lib.state_bytes_of.argtypes = [i64, i64]
    lib.state_bytes_of.restype = ctypes.c_int64
    run.layout = run_layout
    run.layout_of = lambda n, budget=48 * 1024, max_warps=4: int(lib.layout_of(n, n, budget, max_warps))
    run.state_bytes = lambda r, c: max(8, int(lib.state_bytes_of(r, c)))
    return run


def random_problems(gen, batch, max_rows, max_extra_cols, kind, dtype):
    rows = torch.randint(1, max_rows + 1, (batch,), generator=gen)
    cols = rows + torch.randint(0, max_extra_cols + 1, (batch,), generator=gen)
    n_pad, m_pad = int(rows.max()), int(cols.max())
    if kind == "integer_ties":
        cost = torch.randint(0, 3, (batch, n_pad, m_pad), generator=gen).double()
    elif kind == "neg_log_softmax":
        cost = -torch.log_softmax(3 * torch.randn(batch, n_pad, m_pad, generator=gen,
                                                  dtype=torch.float64), -1)
    else:
        cost = torch.rand(batch, n_pad, m_pad, generator=gen, dtype=torch.float64)
    if kind == "inf_entries":
        cost = cost.masked_fill(torch.rand(cost.shape, generator=gen) < 0.25, math.inf)
    return cost.to(dtype), rows, cols


@pytest.mark.parametrize("kind", ["uniform", "integer_ties", "neg_log_softmax", "inf_entries"])
def test_emulated_warp_solver_equals_cpu_op(emulated_kernel, kind):
    seed = secrets.randbits(48)
    gen = torch.Generator().manual_seed(seed)
    # Square problems (JV initialisation) and rectangular ones; sizes above 32 give lanes two columns.
    for max_rows, max_extra, batch in ((6, 0, 12), (6, 3, 12), (40, 0, 2), (36, 5, 1)):
        for dtype in (torch.float64, torch.float32):
            cost, rows, cols = random_problems(gen, batch, max_rows, max_extra, kind, dtype)
            expected, expected_status = torch.ops.mple.linear_sum_assignment(cost, rows, cols)
            got, got_status = emulated_kernel(cost, rows, cols)
            context = f"{kind} {dtype} rows<={max_rows} seed={seed}"
            assert torch.equal(got_status, expected_status), context
            assert torch.equal(got, expected), context


def test_emulated_warp_solver_reports_status(emulated_kernel):
    cost = torch.rand(5, 3, 3, dtype=torch.float64)
    cost[1, 0, 2] = math.nan
    cost[2, :, :2] = math.inf
    rows = torch.tensor([3, 3, 3, 4, 3])
    cols = torch.tensor([3, 3, 3, 3, 2])
    expected, expected_status = torch.ops.mple.linear_sum_assignment(cost, rows, cols)
    got, got_status = emulated_kernel(cost, rows, cols)
    assert got_status.tolist() == expected_status.tolist() == [0, 1, 2, 3, 5]
    assert torch.equal(got, expected)
    assert np.all(got[1:].numpy() == -1)


@pytest.mark.parametrize("warps, global_workspace", [(1, False), (2, False), (3, False), (4, False), (4, True)])
def test_every_layout_of_the_kernel_equals_the_cpu_op(emulated_kernel, warps, global_workspace):
    """The kernel puts 1-4 problems' states side by side in a block's shared memory, or all of them in
    a global workspace (N > 292 and N > 1170 at the real 48 KiB budget).  With the budget scaled to the
    problem size, small problems take each of those paths; each must give the CPU op's answer, with
    partial last blocks (7 problems) and garbage-filled buffers."""
    gen = torch.Generator().manual_seed(warps * 10 + global_workspace)
    cost, rows, cols = random_problems(gen, 7, 24, 6, "neg_log_softmax", torch.float64)
    bytes_per_problem = emulated_kernel.state_bytes(cost.shape[1], cost.shape[2])
    budget = bytes_per_problem - 1 if global_workspace else bytes_per_problem * warps
    expected, expected_status = torch.ops.mple.linear_sum_assignment(cost, rows, cols)
    got, got_status, layout = emulated_kernel.layout(cost, rows, cols, budget)
    assert layout == (-4 if global_workspace else warps)
    assert torch.equal(got_status, expected_status) and torch.equal(got, expected)


def test_the_real_budget_takes_the_paths_the_docs_state(emulated_kernel):
    """The launcher's layout at its 48 KiB budget (the same C++ function): 4 warps per block up to
    N = 292, fewer beyond, the global workspace beyond N = 1170."""
    warps = emulated_kernel.layout_of
    assert warps(292) == 4 and warps(293) == 3 and warps(300) == 3 and warps(400) == 2
    assert warps(600) == 1 and warps(1170) == 1 and warps(1171) == -4 and warps(1200) == -4
