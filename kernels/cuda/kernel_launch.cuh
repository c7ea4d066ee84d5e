// BP_LAUNCH: the one way this project launches a kernel.
#pragma once

// Every kernel launch of the project: `<<<grid, block, shared, stream>>>` under nvcc; in the
// emulated-device build (BRAINPROP_CUDA_EMULATOR, cuda/emulator/) the same launch queued on the
// emulated stream, its arguments copied and their pointers checked.
#if defined(BRAINPROP_CUDA_EMULATOR)
#define BP_LAUNCH(kernel, grid, block, shared, stream, ...)                                  \
  ::bp_emu::launch({#kernel, __FILE__, __LINE__}, grid, block, shared, stream,              \
                   [](const auto&... bp_emu_args) { kernel(bp_emu_args...); }, __VA_ARGS__)
#else
#define BP_LAUNCH(kernel, grid, block, shared, stream, ...) \
  kernel<<<grid, block, shared, stream>>>(__VA_ARGS__)
#endif
