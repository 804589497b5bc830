// Refusing allocations a machine cannot hold, before trying them.  Without this, a huge shape (AXE
// with Lp = Ly = 1e6, a 60000 x 60000 assignment) ends in the allocator's own std::bad_alloc or
// "DefaultCPUAllocator: can't allocate" dump.  The op instead raises a ValueError (c10::ValueError)
// that names what it needs, how much, and how much the device has.  The bound is the device's total
// memory, so the check is deterministic; an allocation below it can still fail on a busy machine,
// with the allocator's out-of-memory error.
#pragma once

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>

namespace mple {

// Bytes of a buffer of `dims` elements of `element_size` bytes, or -1 if the product overflows.
inline int64_t buffer_bytes(std::initializer_list<int64_t> dims, int64_t element_size) {
  int64_t bytes = element_size;
  for (const int64_t d : dims) {
    if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes)) return -1;
  }
  return bytes;
}

// a + b for byte counts where -1 means "overflowed".
inline int64_t add_bytes(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum)) return -1;
  return sum;
}

// Physical memory of this machine in bytes (the bound for CPU buffers).
inline int64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page_size);
}

inline std::string format_gib(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.2f GiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// Raises a ValueError if `bytes` (-1: beyond int64) exceeds `capacity`.  `op` names the op, `what`
// the buffers and their shape, `device` the memory they would live in.
inline void check_fits_in_memory(int64_t bytes, int64_t capacity, const char* op,
                                 const std::string& what, const char* device) {
  TORCH_CHECK_VALUE(bytes >= 0 && bytes <= capacity, op, ": ", what, " would need ",
                    bytes < 0 ? std::string("more than 2^63 bytes") : format_gib(bytes),
                    ", more than the ", format_gib(capacity), " of ", device,
                    " memory; use a smaller batch or smaller sizes");
}

}  // namespace mple
