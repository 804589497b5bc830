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

    def run(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
        cost = cost.contiguous()
        rows, cols = rows.long().contiguous(), cols.long().contiguous()
        assignment = torch.empty(cost.shape[:2], dtype=torch.int64)
        status = torch.empty(cost.shape[0], dtype=torch.int32)
        fn = lib.emulate_f64 if cost.dtype == torch.float64 else lib.emulate_f32
        fn(cost.data_ptr(), cost.shape[0], cost.shape[1], cost.shape[2], rows.data_ptr(),
           cols.data_ptr(), assignment.data_ptr(), status.data_ptr())
        return assignment, status

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
