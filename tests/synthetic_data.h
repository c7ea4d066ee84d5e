// Small synthetic image data sets that the training tests learn in seconds.
#pragma once
#include <cstdint>
#include <random>

#include "data/dataset.h"

namespace bp::test {

// `classes` classes told apart by which region of an 8x8 image is brighter: region(p) names the
// region of pixel p (0 .. classes - 1); pixels of the label's region get +128, every pixel noise.
template <typename Region>
Dataset synthetic_regions(int64_t train, int64_t test, uint64_t seed, int classes, Region region) {
  std::mt19937 gen(static_cast<uint32_t>(seed));
  auto fill = [&](ImageSet& set, int64_t n) {
    set.count = n;
    set.height = set.width = 8;
    set.channels = 1;
    set.pixels.resize(size_t(n * 64));
    set.labels.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const int label = int(gen() % uint32_t(classes));
      set.labels[size_t(i)] = label;
      for (int p = 0; p < 64; ++p)
        set.pixels[size_t(i * 64 + p)] = uint8_t((region(p) == label ? 128 : 0) + gen() % 100);
    }
  };
  Dataset d;
  d.source = "synthetic";
  d.classes = classes;
  fill(d.train, train);
  fill(d.test, test);
  return d;
}

// Two classes: which half (left, right) is brighter.
inline Dataset synthetic_halves(int64_t train, int64_t test, uint64_t seed) {
  Dataset d = synthetic_regions(train, test, seed, 2, [](int p) { return p % 8 < 4 ? 0 : 1; });
  d.name = "halves";
  d.class_names = {"left", "right"};
  return d;
}

// Four classes: which quadrant is brighter.
inline Dataset synthetic_quadrants(int64_t train, int64_t test, uint64_t seed) {
  Dataset d = synthetic_regions(train, test, seed, 4,
                                [](int p) { return (p / 8 < 4 ? 0 : 2) + (p % 8 < 4 ? 0 : 1); });
  d.name = "quadrants";
  d.class_names = {"tl", "tr", "bl", "br"};
  return d;
}

}  // namespace bp::test
