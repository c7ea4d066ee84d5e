#include "train/step_runner.h"

#include <cstdio>

#include "core/trace.h"

namespace bp {

StepRunner::StepRunner(Backend& be, BatchLoader& loader, TrainingStep& step, int batch_size,
                       bool use_graphs)
    : be_(be), loader_(loader), step_(step), batch_size_(batch_size), use_graphs_(use_graphs) {}

void StepRunner::run_plain(int64_t batch_index, double lr, uint64_t step, Tensor& stats) {
  {
    TraceRange range("load batch");
    loader_.load(batch_index, batch_size_);
  }
  step_.run(loader_.x(), loader_.y(), lr, step, stats);
}

void StepRunner::run(int64_t batch_index, double lr, uint64_t step, Tensor& stats) {
  const bool full_batch = (batch_index + 1) * batch_size_ <= loader_.count();
  if (!use_graphs_ || !full_batch) {
    run_plain(batch_index, lr, step, stats);
    return;
  }
  if (!warmed_up_) {
    run_plain(batch_index, lr, step, stats);
    warmed_up_ = true;
    return;
  }
  if (!graph_ || lr != graph_lr_ || stats.raw() != graph_stats_) {
    TraceRange range("capture step graph");
    // By value: a backend may keep the recording (the scalars are fixed at capture anyway).
    try {
      graph_ = be_.capture_step([this, batch_index, lr, step, &stats] {
        run_plain(batch_index, lr, step, stats);
      });
    } catch (const Error& e) {
      // Nothing ran during the failed capture: the step is still to do, without graphs.
      std::fprintf(stderr, "brainprop: recording the step as a graph failed, continuing without "
                           "graphs (slower, same results): %s\n", e.what());
      graph_.reset();
    }
    if (!graph_) {  // this backend has no graphs, or recording failed
      use_graphs_ = false;
      run_plain(batch_index, lr, step, stats);
      return;
    }
    graph_batch_ = batch_index;
    graph_step_ = step;
    graph_lr_ = lr;
    graph_stats_ = stats.raw();
  }
  TraceRange range("step (graph)");
  graph_->replay(batch_index - graph_batch_,
                 static_cast<int64_t>(step) - static_cast<int64_t>(graph_step_));
  ++replays_;
}

}  // namespace bp
