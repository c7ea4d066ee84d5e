#include "train/device_data.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "train/shuffle.h"

namespace bp {

DeviceImages::DeviceImages(Backend& be, const ImageSet& set)
    : count_(set.count), sample_shape_{set.height, set.width, set.channels} {
  Shape full{set.count, set.height, set.width, set.channels};
  images_ = be.empty(full, DType::U8);
  be.copy_from_host(images_, set.pixels.data());
  labels_ = be.empty({set.count}, DType::I32);
  be.copy_from_host(labels_, set.labels.data());
}

BatchLoader::BatchLoader(Backend& be, const DeviceImages& data, int max_batch, DType dtype)
    : be_(be), data_(data) {
  Shape xs{max_batch};
  const Shape sample = data.sample_shape();
  xs.insert(xs.end(), sample.begin(), sample.end());
  x_ = be.empty(xs, dtype);
  y_ = be.empty({max_batch}, DType::I32);
  order_ = be.empty({std::max<int64_t>(data.count(), 1)}, DType::I32);
  set_identity_order();
}

void BatchLoader::set_order(const std::vector<int32_t>& order) {
  BP_CHECK(static_cast<int64_t>(order.size()) == data_.count(), "order of " << order.size()
                                                                 << " for " << data_.count() << " images");
  if (!order.empty()) {
    Tensor view = order_.rows(data_.count());
    be_.copy_from_host(view, order.data());
  }
}

void BatchLoader::set_identity_order() {
  std::vector<int32_t> order(static_cast<size_t>(data_.count()));
  std::iota(order.begin(), order.end(), 0);
  set_order(order);
}

void BatchLoader::shuffle(uint64_t seed, int epoch) {
  if (data_.count() == 0) return;
  Tensor view = order_.rows(data_.count());
  be_.seeded_permutation(view, seed, RngStream::kShuffle, static_cast<uint32_t>(epoch));
}

void BatchLoader::load(int64_t index, int batch_size) {
  const int64_t first = index * batch_size;
  const int64_t rows = std::min<int64_t>(batch_size, data_.count() - first);
  BP_CHECK(rows > 0, "batch " << index << " is past the end of the data");
  x_view_ = x_.rows(rows);
  y_view_ = y_.rows(rows);
  be_.gather_batch(data_.images(), data_.labels(), order_, first, x_view_, y_view_);
}

namespace {
ImageSet subset(const ImageSet& all, std::vector<int32_t> indices) {
  std::sort(indices.begin(), indices.end());
  ImageSet out;
  out.count = static_cast<int64_t>(indices.size());
  out.height = all.height;
  out.width = all.width;
  out.channels = all.channels;
  const int64_t n = all.image_elements();
  out.pixels.resize(static_cast<size_t>(out.count * n));
  out.labels.resize(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(out.pixels.data() + int64_t(i) * n, all.pixels.data() + int64_t(indices[i]) * n,
                static_cast<size_t>(n));
    out.labels[i] = all.labels[size_t(indices[i])];
  }
  return out;
}
}  // namespace

void split_holdout(const ImageSet& all, double fraction, uint64_t seed, ImageSet& train,
                   ImageSet& val) {
  BP_CHECK(fraction > 0 && fraction < 1, "holdout fraction must be in (0, 1), got " << fraction);
  const std::vector<int32_t> order = seeded_permutation(all.count, seed, RngStream::kSplit, 0);
  const int64_t n_val = std::max<int64_t>(1, static_cast<int64_t>(double(all.count) * fraction));
  BP_CHECK(n_val < all.count, "holdout of " << n_val << " leaves no training images");
  const auto cut = order.end() - n_val;
  train = subset(all, std::vector<int32_t>(order.begin(), cut));
  val = subset(all, std::vector<int32_t>(cut, order.end()));
}

}  // namespace bp
