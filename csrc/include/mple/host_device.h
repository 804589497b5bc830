// Marks functions that both backends share: compiled for the host by the C++ compiler and for the
// device as well when nvcc sees them.
#pragma once

#if defined(__CUDACC__)
#define MPLE_HOST_DEVICE __host__ __device__
#else
#define MPLE_HOST_DEVICE
#endif
