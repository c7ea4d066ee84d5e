#include "train/training_step.h"

#include "core/trace.h"
#include "train/device_data.h"

namespace bp {

TrainingStep::TrainingStep(Net& net, Rule rule, double epsilon, uint64_t seed)
    : net_(net), rule_(rule), epsilon_(epsilon), seed_(seed) {
  Backend& be = net.backend();
  const int b = net.max_batch();
  action_ = be.empty({b}, DType::I32);
  err_ = be.empty({b}, net.dtype());
  dlogits_ = be.empty({b, net.classes()}, net.dtype());
  baseline_ = be.empty({1}, DType::F64);
  set_baseline(1.0 / double(net.classes()));
}

double TrainingStep::baseline() const {
  double value = 0;
  net_.backend().copy_to_host(baseline_, &value);
  return value;
}

void TrainingStep::set_baseline(double value) { net_.backend().copy_from_host(baseline_, &value); }

void TrainingStep::run(const Tensor& x, const Tensor& labels, double lr, uint64_t step,
                       Tensor& stats) {
  Tensor logits;
  {
    TraceRange range("forward");
    logits = net_.forward(x, true, step);
  }
  head(logits, labels, step, stats);
  const UpdateArgs update{lr, static_cast<int>(x.dim(0))};
  if (rule_ == Rule::BrainProp)
    backward(action_view_, err_view_, update);
  else
    backward(Tensor(), dlogits_view_, update);
}

void TrainingStep::head(const Tensor& logits, const Tensor& labels, uint64_t step, Tensor& stats) {
  Backend& be = net_.backend();
  const int64_t batch = logits.dim(0);
  if (rule_ == Rule::BrainProp) {
    action_view_ = action_.rows(batch);
    err_view_ = err_.rows(batch);
    TraceRange range("brainprop head (action, reward, RPE)");
    be.brainprop_head(logits, labels, BrainPropHeadArgs{static_cast<float>(epsilon_), seed_, step},
                      action_view_, err_view_, stats);
  } else if (rule_ == Rule::Reinforce) {
    dlogits_view_ = dlogits_.rows(batch);
    TraceRange range("reinforce head (sampled action, reward, policy gradient)");
    be.reinforce_head(logits, labels, ReinforceHeadArgs{seed_, step}, baseline_, dlogits_view_, stats);
  } else {
    dlogits_view_ = dlogits_.rows(batch);
    TraceRange range("softmax cross-entropy head");
    be.softmax_xent_head(logits, labels, dlogits_view_, stats);
  }
}

void TrainingStep::backward(const Tensor& action, const Tensor& err, const UpdateArgs& update) {
  if (rule_ == Rule::BrainProp) {
    TraceRange range("backward (feedback + in-place update)");
    net_.backward_selected(action, err, update);
  } else {
    TraceRange range("backward (gradient + in-place update)");
    net_.backward(err, update);
  }
}

double evaluate_accuracy(Net& net, BatchLoader& loader, int batch, Tensor& stats) {
  Backend& be = net.backend();
  be.fill(stats, 0.0);
  const int64_t n = loader.batches(batch);
  for (int64_t i = 0; i < n; ++i) {
    loader.load(i, batch);
    be.count_correct(net.forward(loader.x(), false), loader.y(), stats);
  }
  const std::vector<double> s = read_stats(be, stats);
  return s[kStatSamples] > 0 ? s[kStatCorrect] / s[kStatSamples] : 0.0;
}

std::vector<double> read_stats(Backend& be, const Tensor& stats) {
  std::vector<double> host(static_cast<size_t>(stats.numel()));
  be.copy_to_host(stats, host.data());
  return host;
}

}  // namespace bp
