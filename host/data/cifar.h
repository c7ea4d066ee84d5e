// CIFAR-10 and CIFAR-100, "binary version" from the authors' site: fixed-size records of
// label byte(s) then 3072 pixel bytes (R, G and B planes of 32x32, each row-major).
#pragma once
#include <string>

#include "data/dataset.h"

namespace bp {

// DIR is the "cifar-10-batches-bin" folder or the folder that holds it. Reads
// data_batch_1..5.bin (train), test_batch.bin (test) and, when present, batches.meta.txt.
Dataset load_cifar10(const std::string& dir);

// DIR is the "cifar-100-binary" folder or the folder that holds it. Reads train.bin and
// test.bin (labels: coarse byte, fine byte) and, when present, the *_label_names.txt files.
// load_cifar100 uses the 100 fine labels (as the paper does), load_cifar100_coarse the 20
// coarse ones.
Dataset load_cifar100(const std::string& dir);
Dataset load_cifar100_coarse(const std::string& dir);

}  // namespace bp
