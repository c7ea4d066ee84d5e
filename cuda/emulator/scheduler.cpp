// The kernel scheduler of the emulated device. A launch runs block after block in the
// configured order (ascending, descending or a seeded shuffle of the linear block index); the
// threads of a block run on fibers (boost.context), so that __syncthreads() is a real barrier:
// a thread that reaches it waits until every thread of its block has reached the same barrier.
// A barrier that some threads reach while others have left the kernel, or that threads reach
// at different call sites, is reported as divergent. Before each block the shared-memory
// section is filled with NaN bytes. sm_90's launch limits give the runtime's errors.
//
// Speed: a fiber runs thread after thread of its block until one waits at a barrier; only then
// does the next thread get a fiber of its own. Kernels without barriers thus cost one function
// call per thread. Under ThreadSanitizer every thread index has its own fiber and TSan fiber,
// so that TSan sees the threads of a block as concurrent: a missing __syncthreads() between a
// shared-memory write and another thread's read is reported as a race. Happens-before is
// modelled on the real device: launch -> every thread, barrier -> every thread after it,
// every thread -> the host after the launch; blocks are ordered one after another under TSan
// (their shared memory is the same static storage), so races between blocks are not seen.
#include <boost/context/detail/fcontext.hpp>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <sstream>
#include <vector>

#include "bp_emu/kernel_launch.h"
#include "state.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BP_EMU_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define BP_EMU_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BP_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define BP_EMU_TSAN 1
#endif

#if defined(BP_EMU_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(BP_EMU_TSAN)
#include <sanitizer/tsan_interface.h>
// The scheduler's own bookkeeping is shared by the host and the fibers by design; TSan only
// judges the kernels' accesses (and the happens-before edges annotated below).
#define BP_EMU_NO_TSAN __attribute__((no_sanitize("thread"), noinline))
#else
#define BP_EMU_NO_TSAN
#endif

extern "C" {
// The section holding every __shared__ variable (bp_emu/prelude.h); weak: a program may have none.
extern char __start_bp_emu_shared[] __attribute__((weak));
extern char __stop_bp_emu_shared[] __attribute__((weak));
}

namespace bp_emu {

thread_local ThreadCoordinates current;

namespace {

namespace bctx = boost::context::detail;

#if defined(BP_EMU_ASAN) || defined(BP_EMU_TSAN)
constexpr size_t kStackBytes = size_t(512) << 10;  // sanitizers' frames are larger
#else
constexpr size_t kStackBytes = size_t(128) << 10;
#endif
constexpr size_t kGuardBytes = 4096;

// sm_90 limits (cudaDeviceProp of the emulated device).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
constexpr unsigned long long kMaxGridDim[3] = {0x7fffffffULL, 65535, 65535};
constexpr size_t kMaxDynamicShared = size_t(48) << 10;

enum class FiberState { Running, Idle, AtBarrier };

struct Fiber {
  void* mapping = nullptr;
  bctx::fcontext_t context = nullptr;  // where to resume it
  FiberState state = FiberState::Idle;
  int thread = -1;    // the thread it is running (linear index in the block)
  int assigned = -1;  // TSan: the one thread the scheduler gave it
  const char* barrier_file = nullptr;
  int barrier_line = 0;
#if defined(BP_EMU_TSAN)
  void* tsan_fiber = nullptr;
#endif
};

struct BlockRun {
  KernelBody* body = nullptr;
  int threads = 0;
  int next_thread = 0;  // the next thread not yet started
  int finished = 0;
};

struct Scheduler {
  std::vector<Fiber*> fibers;  // the pool, reused across blocks and launches
  std::vector<Fiber*> retired;  // stuck at a divergent barrier: never resumed, kept
  Fiber* running = nullptr;
  bctx::fcontext_t host = nullptr;
  BlockRun block;
  const char* kernel = "";
  bool in_kernel = false;
  unsigned long long launches = 0;
#if defined(BP_EMU_ASAN)
  const void* host_stack = nullptr;
  size_t host_stack_size = 0;
#endif
#if defined(BP_EMU_TSAN)
  void* tsan_host = nullptr;
  char launch_token = 0, done_token = 0, barrier_tokens[2] = {0, 0};
  int barrier_generation = 0;
#endif
};

// Immortal: fibers may be referenced by a kernel still on their stacks at exit.
Scheduler& g = *new Scheduler;

bool one_fiber_per_thread() {
#if defined(BP_EMU_TSAN)
  return true;
#else
  return false;
#endif
}

BP_EMU_NO_TSAN void set_thread(int linear) {
  const dim3& b = current.block_dim;
  current.thread_idx.x = unsigned(linear) % b.x;
  current.thread_idx.y = (unsigned(linear) / b.x) % b.y;
  current.thread_idx.z = unsigned(linear) / (b.x * b.y);
}

// --- switching, with the sanitizers told about the stacks ---

BP_EMU_NO_TSAN void switch_to_host(Fiber* self) {
#if defined(BP_EMU_ASAN)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, g.host_stack, g.host_stack_size);
#endif
#if defined(BP_EMU_TSAN)
  __tsan_switch_to_fiber(g.tsan_host, __tsan_switch_to_fiber_no_sync);
#endif
  const bctx::transfer_t back = bctx::jump_fcontext(g.host, nullptr);
  g.host = back.fctx;
#if defined(BP_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, &g.host_stack, &g.host_stack_size);
#endif
  set_thread(self->thread);  // the host ran other threads meanwhile
}

BP_EMU_NO_TSAN void run_threads(Fiber* self) {
  for (;;) {
    int t;
    if (one_fiber_per_thread()) {
      if (self->assigned < 0) return;
      t = self->assigned;
      self->assigned = -1;
    } else {
      if (g.block.next_thread >= g.block.threads) return;
      t = g.block.next_thread++;
    }
    self->thread = t;
    set_thread(t);
#if defined(BP_EMU_TSAN)
    __tsan_acquire(&g.launch_token);
#endif
    g.block.body->run_thread();
#if defined(BP_EMU_TSAN)
    __tsan_release(&g.done_token);
#endif
    ++g.block.finished;
    self->thread = -1;
  }
}

BP_EMU_NO_TSAN void fiber_main(bctx::transfer_t from) {
  Fiber* self = static_cast<Fiber*>(from.data);
  g.host = from.fctx;
#if defined(BP_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &g.host_stack, &g.host_stack_size);
#endif
  for (;;) {
    run_threads(self);
    self->state = FiberState::Idle;
    switch_to_host(self);
    self->state = FiberState::Running;
  }
}

Fiber* new_fiber() {
  auto* f = new Fiber;
  f->mapping = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (f->mapping == MAP_FAILED) {
    std::fprintf(stderr, "brainprop-emu: cannot map a fiber stack\n");
    std::abort();
  }
  mprotect(f->mapping, kGuardBytes, PROT_NONE);  // a stack overflow faults instead of corrupting
  char* top = static_cast<char*>(f->mapping) + kGuardBytes + kStackBytes;
  f->context = bctx::make_fcontext(top, kStackBytes, fiber_main);
#if defined(BP_EMU_TSAN)
  f->tsan_fiber = __tsan_create_fiber(0);
#endif
  return f;
}

// Runs fiber f until it waits at a barrier or has no thread left.
BP_EMU_NO_TSAN void resume(Fiber* f) {
  g.running = f;
  f->state = FiberState::Running;
#if defined(BP_EMU_ASAN)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, static_cast<char*>(f->mapping) + kGuardBytes, kStackBytes);
#endif
#if defined(BP_EMU_TSAN)
  if (!g.tsan_host) g.tsan_host = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(f->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  const bctx::transfer_t back = bctx::jump_fcontext(f->context, f);
  f->context = back.fctx;
#if defined(BP_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  g.running = nullptr;
}

std::string where(const Fiber* f) {
  std::ostringstream out;
  out << f->barrier_file << ":" << f->barrier_line;
  return out.str();
}

// Runs one block to completion; false after a divergent barrier (reported).
BP_EMU_NO_TSAN bool run_block(KernelBody* body, int threads) {
  g.block = BlockRun{body, threads, 0, 0};
  std::vector<Fiber*> waiting;
  size_t pool_next = 0;
  auto fiber_at = [&](size_t i) {
    while (g.fibers.size() <= i) g.fibers.push_back(new_fiber());
    return g.fibers[i];
  };
  if (one_fiber_per_thread()) {
    for (int t = 0; t < threads; ++t) {
      Fiber* f = fiber_at(size_t(t));
      f->assigned = t;
      resume(f);
      if (f->state == FiberState::AtBarrier) waiting.push_back(f);
    }
  } else {
    while (g.block.next_thread < threads) {
      Fiber* f = fiber_at(pool_next++);
      resume(f);
      if (f->state == FiberState::AtBarrier) waiting.push_back(f);
    }
  }
  while (!waiting.empty()) {
    // Every thread of the block has started; each one is either waiting here or done.
    const Fiber* first = waiting.front();
    std::string divergence;
    if (g.block.finished > 0) {
      std::ostringstream msg;
      msg << waiting.size() << " of " << threads << " threads wait at the barrier at " << where(first)
          << " while " << g.block.finished << " have left the kernel";
      divergence = msg.str();
    }
    for (const Fiber* f : waiting)
      if (divergence.empty() && (f->barrier_file != first->barrier_file || f->barrier_line != first->barrier_line))
        divergence = "threads wait at different barriers: " + where(first) + " and " + where(f);
    if (!divergence.empty()) {
      std::ostringstream msg;
      msg << "kernel " << g.kernel << ", block (" << current.block_idx.x << ", " << current.block_idx.y
          << ", " << current.block_idx.z << "): divergent __syncthreads(): " << divergence;
      fail_execution(cudaErrorLaunchFailure, msg.str());
#if defined(BP_EMU_TSAN)
      __tsan_acquire(&g.barrier_tokens[g.barrier_generation & 1]);  // what the stuck ones did
#endif
      // The waiting fibers' stacks hold frames that will never finish: retire them.
      for (Fiber* f : waiting) {
        g.retired.push_back(f);
        std::replace(g.fibers.begin(), g.fibers.end(), f, new_fiber());
      }
      return false;
    }
#if defined(BP_EMU_TSAN)
    ++g.barrier_generation;
#endif
    std::vector<Fiber*> released;
    released.swap(waiting);
    std::sort(released.begin(), released.end(),
              [](const Fiber* a, const Fiber* b) { return a->thread < b->thread; });
    for (Fiber* f : released) {
      resume(f);
      if (f->state == FiberState::AtBarrier) waiting.push_back(f);
    }
  }
  return true;
}

// The linear block index to run i-th.
struct BlockOrderPlan {
  BlockOrder order;
  unsigned long long total;
  std::vector<uint32_t> shuffled;
  unsigned long long at(unsigned long long i) const {
    switch (order) {
      case BlockOrder::Ascending: return i;
      case BlockOrder::Descending: return total - 1 - i;
      case BlockOrder::Shuffled: return shuffled[size_t(i)];
    }
    return i;
  }
};

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

BlockOrderPlan plan_order(unsigned long long total) {
  BlockOrderPlan plan{settings().block_order, total, {}};
  if (plan.order == BlockOrder::Shuffled) {
    plan.shuffled.resize(size_t(total));
    std::iota(plan.shuffled.begin(), plan.shuffled.end(), 0u);
    uint64_t state = settings().shuffle_seed * 0x100000001B3ULL + g.launches;
    for (size_t i = plan.shuffled.size(); i > 1; --i)
      std::swap(plan.shuffled[i - 1], plan.shuffled[size_t(splitmix(state) % i)]);
  }
  return plan;
}

void poison_shared_memory() {
  if (__start_bp_emu_shared && __stop_bp_emu_shared)
    fill_nan_bytes(__start_bp_emu_shared, size_t(__stop_bp_emu_shared - __start_bp_emu_shared));
}

struct Launch {
  LaunchSite site;
  dim3 grid, block;
  std::shared_ptr<KernelBody> body;
  std::vector<PointerArgument> pointers;
};

// The built-ins every thread of the launch/block reads (the scheduler's writes, not the kernel's).
BP_EMU_NO_TSAN void set_launch_coordinates(dim3 grid, dim3 block) {
  current.block_dim = block;
  current.grid_dim = grid;
}
BP_EMU_NO_TSAN void set_block(unsigned long long b, dim3 grid) {
  current.block_idx.x = unsigned(b % grid.x);
  current.block_idx.y = unsigned((b / grid.x) % grid.y);
  current.block_idx.z = unsigned(b / ((unsigned long long)grid.x * grid.y));
}

void execute(const Launch& l) {
  for (const PointerArgument& p : l.pointers)
    if (!detail::check_kernel_pointer(l.site.kernel, p.position, p.value)) return;
  ++g.launches;
  const unsigned long long total = (unsigned long long)l.grid.x * l.grid.y * l.grid.z;
  const int threads = int(l.block.x * l.block.y * l.block.z);
  const BlockOrderPlan order = plan_order(total);
  g.kernel = l.site.kernel;
  g.in_kernel = true;
  set_launch_coordinates(l.grid, l.block);
  for (unsigned long long i = 0; i < total; ++i) {
    set_block(order.at(i), l.grid);
#if defined(BP_EMU_TSAN)
    __tsan_acquire(&g.done_token);  // the previous block (see the note at the top)
#endif
    poison_shared_memory();
#if defined(BP_EMU_TSAN)
    __tsan_release(&g.launch_token);
#endif
    if (!run_block(l.body.get(), threads)) break;
  }
#if defined(BP_EMU_TSAN)
  __tsan_acquire(&g.done_token);
#endif
  g.in_kernel = false;
}

// A kernel that reads or writes outside any mapping (a wild pointer) faults the process, as on
// the device; without a sanitizer, say which kernel, block and thread did it before dying.
void on_fault(int sig) {
  if (g.in_kernel) {
    char text[512];
    const int n = std::snprintf(text, sizeof text,
                                "brainprop-emu: %s in kernel %s, block (%u, %u, %u), thread (%u, %u, %u): "
                                "an illegal memory access (cudaErrorIllegalAddress on a GPU)\n",
                                sig == SIGSEGV ? "segmentation fault" : "bus error", g.kernel,
                                current.block_idx.x, current.block_idx.y, current.block_idx.z,
                                current.thread_idx.x, current.thread_idx.y, current.thread_idx.z);
    if (n > 0) (void)!write(2, text, size_t(std::min(n, int(sizeof text) - 1)));
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void report_faults_once() {
#if !defined(BP_EMU_ASAN) && !defined(BP_EMU_TSAN)  // the sanitizers report faults themselves
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_handler = on_fault;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &action, nullptr);
    sigaction(SIGBUS, &action, nullptr);
    return true;
  }();
  (void)installed;
#endif
}

cudaError_t check_configuration(const LaunchSite& site, dim3 grid, dim3 block, size_t shared) {
  const unsigned bdim[3] = {block.x, block.y, block.z};
  const unsigned gdim[3] = {grid.x, grid.y, grid.z};
  std::ostringstream why;
  for (int d = 0; d < 3; ++d) {
    if (bdim[d] == 0 || bdim[d] > kMaxBlockDim[d])
      why << "block dimension " << "xyz"[d] << " = " << bdim[d] << " (limit " << kMaxBlockDim[d] << "); ";
    if (gdim[d] == 0 || gdim[d] > kMaxGridDim[d])
      why << "grid dimension " << "xyz"[d] << " = " << gdim[d] << " (limit " << kMaxGridDim[d] << "); ";
  }
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (threads > kMaxThreadsPerBlock) why << threads << " threads per block (limit 1024); ";
  cudaError_t code = why.str().empty() ? cudaSuccess : cudaErrorInvalidConfiguration;
  if (code == cudaSuccess && shared > kMaxDynamicShared) {
    why << shared << " bytes of dynamic shared memory (limit " << kMaxDynamicShared
        << " without cudaFuncAttributeMaxDynamicSharedMemorySize); ";
    code = cudaErrorInvalidValue;
  }
  if (code != cudaSuccess)
    std::fprintf(stderr, "brainprop-emu: launch of %s (%s:%d) refused: %s\n", site.kernel, site.file,
                 site.line, why.str().c_str());
  return code;
}

}  // namespace

cudaError_t launch_kernel(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes,
                          cudaStream_t stream, std::shared_ptr<KernelBody> body,
                          const std::vector<PointerArgument>& pointers) {
  std::lock_guard<std::recursive_mutex> guard(detail::lock());
  if (const cudaError_t e = detail::sticky()) return detail::record(e);
  if (const cudaError_t e = check_configuration(site, grid, block, shared_bytes)) {
    if (is_capturing(stream)) detail::refuse_during_capture();
    return detail::record(e);
  }
  report_faults_once();
  auto launch = std::make_shared<Launch>(Launch{site, grid, block, std::move(body), pointers});
  return detail::record(enqueue(stream, site.kernel, [launch] { execute(*launch); }));
}

BP_EMU_NO_TSAN void block_barrier(const char* file, int line) {
  Fiber* self = g.running;
  if (!self || !g.in_kernel) {
    std::fprintf(stderr, "brainprop-emu: __syncthreads() called outside a kernel (%s:%d)\n", file, line);
    std::abort();
  }
#if defined(BP_EMU_TSAN)
  char* token = &g.barrier_tokens[g.barrier_generation & 1];
  __tsan_release(token);
#endif
  self->barrier_file = file;
  self->barrier_line = line;
  self->state = FiberState::AtBarrier;
  switch_to_host(self);
#if defined(BP_EMU_TSAN)
  __tsan_acquire(token);
#endif
}

namespace detail {
void reset_scheduler() { g.launches = 0; }
}  // namespace detail

}  // namespace bp_emu
