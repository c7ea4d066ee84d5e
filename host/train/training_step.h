// One SGD step of any learning rule on a batch already on the backend: forward, output head
// (BrainProp's action selection + RPE, REINFORCE's sampled policy gradient, or softmax
// cross-entropy),
// and the backward pass that updates every layer in place. Used by the trainer, the
// benchmark and the tests, so all three time and check the same code.
#pragma once
#include "model/net.h"
#include "train/train_config.h"

namespace bp {

class TrainingStep {
 public:
  TrainingStep(Net& net, Rule rule, double epsilon, uint64_t seed);
  // stats (float64 [kStatCount] on the backend) accumulates loss, accuracy, reward, exploration.
  void run(const Tensor& x, const Tensor& labels, double lr, uint64_t step, Tensor& stats);
  // The two halves of run() after the forward pass, for the update probe: the head leaves the
  // output error (BrainProp: actions() and errors(); EBP: output_gradient()), and backward()
  // sends an output error of that kind down, updating the net in place.
  void head(const Tensor& logits, const Tensor& labels, uint64_t step, Tensor& stats);
  // BrainProp: `action` int32 [B] and `err` [B]; otherwise `err` is dlogits [B, classes].
  void backward(const Tensor& action, const Tensor& err, const UpdateArgs& update);
  // The last step's BrainProp actions (int32 [B]) and output errors ([B]).
  const Tensor& actions() const { return action_view_; }
  const Tensor& errors() const { return err_view_; }
  // The last step's gradient at the logits [B, classes] (EBP).
  const Tensor& output_gradient() const { return dlogits_view_; }
  Rule rule() const { return rule_; }
  // REINFORCE's running reward baseline (kept on the backend and moved by every step's head;
  // read and set by the trainer for checkpoints). Starts at 1 / classes, a uniform policy's
  // expected reward.
  double baseline() const;
  void set_baseline(double value);

 private:
  Net& net_;
  Rule rule_;
  double epsilon_;
  uint64_t seed_;
  Tensor action_, err_, dlogits_, action_view_, err_view_, dlogits_view_;
  Tensor baseline_;  // float64 [1]
};

// Accuracy of argmax over a whole split, in batches of `batch`; stats is scratch.
double evaluate_accuracy(Net& net, class BatchLoader& loader, int batch, Tensor& stats);

// Reads a stats tensor back to the host (the one sync per epoch or evaluation).
std::vector<double> read_stats(Backend& be, const Tensor& stats);

}  // namespace bp
