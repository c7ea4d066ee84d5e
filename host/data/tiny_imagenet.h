// Tiny ImageNet (the "tiny-imagenet-200" folder from its authors' site): 200 classes of
// 64x64 JPEGs. The labelled val split is the test split, as in the paper.
#pragma once
#include <string>

#include "data/dataset.h"

namespace bp {

// DIR holds wnids.txt (the classes; class index = line order), optionally words.txt (names),
// train/<wnid>/images/*.JPEG and val/images/*.JPEG labelled by val/val_annotations.txt.
// Decoded once, then read from the decoded cache (see data/jpeg_source.h).
Dataset load_tiny_imagenet(const std::string& dir);

}  // namespace bp
