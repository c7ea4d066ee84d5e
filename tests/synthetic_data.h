// Small synthetic image data sets that the training tests learn in seconds.
#pragma once
#include <cstdint>
#include <random>

#include "data/dataset.h"

namespace bp::test {

// Two classes told apart by which half of an 8x8 image is brighter.
inline Dataset synthetic_halves(int64_t train, int64_t test, uint64_t seed) {
  std::mt19937 gen(static_cast<uint32_t>(seed));
  auto fill = [&](ImageSet& set, int64_t n) {
    set.count = n;
    set.height = set.width = 8;
    set.channels = 1;
    set.pixels.resize(size_t(n * 64));
    set.labels.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const int label = int(gen() % 2);
      set.labels[size_t(i)] = label;
      for (int p = 0; p < 64; ++p) {
        const bool bright = ((p % 8) < 4) == (label == 0);
        set.pixels[size_t(i * 64 + p)] = uint8_t((bright ? 128 : 0) + gen() % 100);
      }
    }
  };
  Dataset d;
  d.name = "halves";
  d.source = "synthetic";
  d.classes = 2;
  d.class_names = {"left", "right"};
  fill(d.train, train);
  fill(d.test, test);
  return d;
}

// Four classes told apart by which quadrant of an 8x8 image is brighter.
inline Dataset synthetic_quadrants(int64_t train, int64_t test, uint64_t seed) {
  std::mt19937 gen(static_cast<uint32_t>(seed));
  auto fill = [&](ImageSet& set, int64_t n) {
    set.count = n;
    set.height = set.width = 8;
    set.channels = 1;
    set.pixels.resize(size_t(n * 64));
    set.labels.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const int label = int(gen() % 4);
      set.labels[size_t(i)] = label;
      for (int p = 0; p < 64; ++p) {
        const int quadrant = (p / 8 < 4 ? 0 : 2) + (p % 8 < 4 ? 0 : 1);
        set.pixels[size_t(i * 64 + p)] = uint8_t((quadrant == label ? 128 : 0) + gen() % 100);
      }
    }
  };
  Dataset d;
  d.name = "quadrants";
  d.source = "synthetic";
  d.classes = 4;
  d.class_names = {"tl", "tr", "bl", "br"};
  fill(d.train, train);
  fill(d.test, test);
  return d;
}

}  // namespace bp::test
