// Streams, events and graphs of the emulated device. A stream is an in-order queue: work is
// queued when issued and run when the host waits for it (a synchronisation, a blocking copy,
// an event wait), which is a legal schedule of the real device and makes a missing
// synchronisation visible (the host reads data that is not there yet). A capturing stream
// records instead; calls that are illegal during capture fail as the runtime's do and
// invalidate it; a graph launch queues the recorded work again, with the arguments it had.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "state.h"

namespace bp_emu {
namespace detail {
namespace {

CUstream_st g_legacy;  // the default stream (null, cudaStreamLegacy)
std::set<CUstream_st*>& streams() {
  static std::set<CUstream_st*> live;
  return live;
}
std::set<CUevent_st*>& events() {
  static std::set<CUevent_st*> live;
  return live;
}
unsigned long long g_capture_ids = 0;
cudaError_t run_queue(CUstream_st* s) {
  if (s->running) return sticky();  // an op waiting on its own stream: the rest runs after it
  s->running = true;
  while (!s->queue.empty()) {
    StreamOp op = std::move(s->queue.front());
    s->queue.pop_front();
    if (sticky() != cudaSuccess) continue;  // a faulted device runs nothing more
    op.run();
  }
  s->running = false;
  return sticky();
}

}  // namespace

CUstream_st* resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g_legacy;
  return s;
}

bool valid_stream(cudaStream_t s) {
  CUstream_st* r = resolve(s);
  return r == &g_legacy || streams().count(r) != 0;
}

bool any_capture_active() {
  if (g_legacy.capturing) return true;
  for (CUstream_st* s : streams())
    if (s->capturing) return true;
  return false;
}

cudaError_t refuse_during_capture() {
  if (!any_capture_active()) return cudaSuccess;
  for (CUstream_st* s : streams())
    if (s->capturing) s->capture_invalidated = true;
  std::fprintf(stderr, "brainprop-emu: a call that is illegal during stream capture invalidated the capture\n");
  return record(cudaErrorStreamCaptureUnsupported);
}

cudaError_t drain_all() {
  cudaError_t e = run_queue(&g_legacy);
  for (CUstream_st* s : std::vector<CUstream_st*>(streams().begin(), streams().end()))
    if (!s->capturing) e = run_queue(s);
  return sticky() != cudaSuccess ? sticky() : e;
}

cudaError_t drain_for_legacy() {
  // The legacy stream waits for every blocking stream (non-blocking ones are independent).
  for (CUstream_st* s : std::vector<CUstream_st*>(streams().begin(), streams().end()))
    if (!(s->flags & cudaStreamNonBlocking) && !s->capturing) run_queue(s);
  return run_queue(&g_legacy);
}

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

void reset_streams() {
  g_legacy.queue.clear();
  g_legacy.capturing = false;
  for (CUstream_st* s : streams()) delete s;
  streams().clear();
  for (CUevent_st* e : events()) delete e;
  events().clear();
  g_legacy.running = false;
}

}  // namespace detail

cudaError_t enqueue(cudaStream_t stream, const char* name, std::function<void()> op) {
  using namespace detail;
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (sticky() != cudaSuccess) return sticky();
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (s->capturing) {
    if (s->capture_invalidated) return record(cudaErrorStreamCaptureInvalidated);
    s->captured.push_back({name, std::move(op)});
    return cudaSuccess;
  }
  if (s == &g_legacy && any_capture_active()) {
    // Work on the legacy stream would wait for the capturing streams.
    refuse_during_capture();
    return record(cudaErrorStreamCaptureImplicit);
  }
  s->queue.push_back({name, std::move(op)});
  if (settings().synchronous) return run_queue(s);
  return cudaSuccess;
}

cudaError_t drain(cudaStream_t stream) {
  using namespace detail;
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (s->capturing) {
    refuse_during_capture();
    return cudaErrorStreamCaptureUnsupported;
  }
  if (s == &g_legacy) return drain_for_legacy();
  return run_queue(s);
}

bool is_capturing(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(detail::lock());
  return detail::valid_stream(stream) && detail::resolve(stream)->capturing;
}

}  // namespace bp_emu

using namespace bp_emu::detail;

extern "C" {

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!stream) return record(cudaErrorInvalidValue);
  if (const cudaError_t e = sticky()) return record(e);
  auto* s = new CUstream_st;
  s->flags = flags;
  streams().insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  CUstream_st* s = resolve(stream);
  if (s == &g_legacy || !streams().count(s)) return record(cudaErrorInvalidResourceHandle);
  if (s->capturing) {
    s->capture_invalidated = true;
    return record(cudaErrorStreamCaptureUnsupported);
  }
  // Work already queued still completes (the real stream is released once it is idle).
  run_queue(s);
  streams().erase(s);
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  return record(bp_emu::drain(stream));
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  if (resolve(stream)->capturing) return record(cudaErrorStreamCaptureUnsupported);
  // Work queued on the emulated device progresses when the host looks at it.
  return record(bp_emu::drain(stream));
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event || !events().count(event)) return record(cudaErrorInvalidResourceHandle);
  if (!event->recorded || resolve(event->stream) == resolve(stream)) return cudaSuccess;
  cudaStream_t other = event->stream;
  return record(bp_emu::enqueue(stream, "cudaStreamWaitEvent", [other] {
    if (valid_stream(other)) bp_emu::drain(other);
  }));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (const cudaError_t e = sticky()) return record(e);
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (s == &g_legacy) return record(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (s->capturing) return record(cudaErrorIllegalState);
  s->capturing = true;
  s->capture_invalidated = false;
  s->capture_mode = mode;
  s->captured.clear();
  s->capture_id = ++g_capture_ids;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!graph) return record(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (!s->capturing) return record(cudaErrorIllegalState);
  s->capturing = false;
  if (s->capture_invalidated) {
    s->captured.clear();
    return record(cudaErrorStreamCaptureInvalidated);
  }
  auto* g = new CUgraph_st;
  g->ops = std::move(s->captured);
  s->captured.clear();
  *graph = g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!status) return record(cudaErrorInvalidValue);
  if (!valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  *status = !s->capturing ? cudaStreamCaptureStatusNone
            : s->capture_invalidated ? cudaStreamCaptureStatusInvalidated
                                     : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!exec || !graph) return record(cudaErrorInvalidValue);
  auto* x = new CUgraphExec_st;
  x->ops = graph->ops;  // an executable graph is independent of the graph it came from
  *exec = x;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!exec) return record(cudaErrorInvalidValue);
  if (const cudaError_t e = sticky()) return record(e);
  for (const StreamOp& op : exec->ops)
    if (const cudaError_t e = bp_emu::enqueue(stream, op.name, op.run)) return record(e);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event) return record(cudaErrorInvalidValue);
  auto* e = new CUevent_st;
  e->flags = flags;
  events().insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event || !events().erase(event)) return record(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event || !events().count(event)) return record(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->completed = false;
  event->stream = stream;
  return record(bp_emu::enqueue(stream, "cudaEventRecord", [event] {
    if (!events().count(event)) return;
    event->completed = true;
    event->time_ms = now_ms();
  }));
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event || !events().count(event)) return record(cudaErrorInvalidResourceHandle);
  if (!event->recorded) return cudaSuccess;
  if (!event->completed) {
    if (resolve(event->stream)->capturing) return record(cudaErrorStreamCaptureUnsupported);
    bp_emu::drain(event->stream);
  }
  return event->completed ? cudaSuccess : record(cudaErrorNotReady);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!event || !events().count(event)) return record(cudaErrorInvalidResourceHandle);
  if (!event->recorded || event->completed) return sticky();
  if (const cudaError_t e = refuse_during_capture()) return e;
  return record(bp_emu::drain(event->stream));
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!ms) return record(cudaErrorInvalidValue);
  if (!start || !end || !events().count(start) || !events().count(end))
    return record(cudaErrorInvalidResourceHandle);
  if ((start->flags | end->flags) & cudaEventDisableTiming) return record(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return record(cudaErrorInvalidResourceHandle);
  if (!start->completed || !end->completed) return record(cudaErrorNotReady);
  *ms = float(end->time_ms - start->time_ms);
  return cudaSuccess;
}

}  // extern "C"
