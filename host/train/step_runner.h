// Runs training steps batch by batch: gathers the batch and runs the TrainingStep, through a
// recorded graph where the backend offers one (CUDA graphs: one launch per step instead of
// dozens). The first full batch runs plainly (lazy set-up), the next one is captured, and
// later ones replay it with the batch offset and step moved; a new learning rate recaptures,
// and a partial last batch takes the plain path.
#pragma once
#include <memory>

#include "train/device_data.h"
#include "train/training_step.h"

namespace bp {

class StepRunner {
 public:
  StepRunner(Backend& be, BatchLoader& loader, TrainingStep& step, int batch_size,
             bool use_graphs);
  void run(int64_t batch_index, double lr, uint64_t step, Tensor& stats);
  // Steps run by replaying a graph so far (for tests and benchmarks).
  int64_t replays() const { return replays_; }

 private:
  void run_plain(int64_t batch_index, double lr, uint64_t step, Tensor& stats);

  Backend& be_;
  BatchLoader& loader_;
  TrainingStep& step_;
  int batch_size_;
  bool use_graphs_;
  bool warmed_up_ = false;
  std::unique_ptr<StepGraph> graph_;
  int64_t graph_batch_ = 0;
  uint64_t graph_step_ = 0;
  double graph_lr_ = 0;
  const void* graph_stats_ = nullptr;
  int64_t replays_ = 0;
};

}  // namespace bp
