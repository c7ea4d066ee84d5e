// A data split uploaded to the backend once (uint8 pixels, int32 labels), and the batch
// buffers a loop gathers into: the scaling to [0, 1] happens in the gather.
#pragma once
#include <vector>

#include "core/backend.h"
#include "data/dataset.h"

namespace bp {

class DeviceImages {
 public:
  DeviceImages(Backend& be, const ImageSet& set);
  int64_t count() const { return count_; }
  Shape sample_shape() const { return sample_shape_; }
  const Tensor& images() const { return images_; }
  const Tensor& labels() const { return labels_; }

 private:
  int64_t count_;
  Shape sample_shape_;  // {H, W, C}
  Tensor images_, labels_;
};

class BatchLoader {
 public:
  BatchLoader(Backend& be, const DeviceImages& data, int max_batch, DType dtype);
  // Sets the visiting order (an upload).
  void set_order(const std::vector<int32_t>& order);
  void set_identity_order();
  // Epoch `epoch`'s shuffle (shuffle.h's epoch_permutation), made on the backend.
  void shuffle(uint64_t seed, int epoch);
  int64_t count() const { return data_.count(); }
  int64_t batches(int batch_size) const { return (data_.count() + batch_size - 1) / batch_size; }
  // Gathers batch `index` of the current order; the last one may be partial.
  void load(int64_t index, int batch_size);
  const Tensor& x() const { return x_view_; }
  const Tensor& y() const { return y_view_; }

 private:
  Backend& be_;
  const DeviceImages& data_;
  Tensor order_, x_, y_, x_view_, y_view_;
};

// Splits off the validation part of a training set: the last `fraction` of a seeded
// permutation (kSplit stream) becomes validation, the rest training, both in index order.
void split_holdout(const ImageSet& all, double fraction, uint64_t seed, ImageSet& train,
                   ImageSet& val);

}  // namespace bp
