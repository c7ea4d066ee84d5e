// The reference's learning-rate schedule and Keras-style early stopping.
#pragma once
#include <cmath>
#include <limits>

namespace bp {

struct LrSchedule {
  double base = 0.1;
  int every = 100;      // halve every this many epochs (0: constant)
  double factor = 0.5;
  // epoch is 0-based, as Keras's LearningRateScheduler: lr * factor^(epoch // every).
  double at(int epoch) const {
    return every > 0 ? base * std::pow(factor, epoch / every) : base;
  }
};

// Keras EarlyStopping(monitor=val_accuracy, mode=max): an epoch improves when it beats the
// best so far by more than min_delta; training stops after `patience` epochs without one.
class EarlyStopping {
 public:
  EarlyStopping(int patience, double min_delta) : patience_(patience), min_delta_(min_delta) {}
  // Records one epoch's validation accuracy; returns true when training should stop.
  bool update(double value) {
    if (value - min_delta_ > best_) {
      best_ = value;
      wait_ = 0;
      return false;
    }
    return ++wait_ >= patience_;
  }
  int wait() const { return wait_; }
  double best() const { return best_; }
  void restore(double best, int wait) {
    best_ = best;
    wait_ = wait;
  }

 private:
  int patience_;
  double min_delta_;
  double best_ = -std::numeric_limits<double>::infinity();
  int wait_ = 0;
};

}  // namespace bp
