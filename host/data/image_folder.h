// Image folders: DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg, the layout of
// torchvision's ImageFolder with a train and a test side. JPEG only (.jpg/.jpeg, any case);
// other files are skipped.
#pragma once
#include <string>

#include "data/dataset.h"

namespace bp {

// Classes are the sorted subfolder names of DIR/train; DIR/test must have the same ones.
// Files are taken in name order and interleaved across classes (file 0 of every class, then
// file 1, ...). All images must share the size of the first one. Decoded once, then read
// from the decoded cache (see data/jpeg_source.h).
Dataset load_image_folder(const std::string& dir);

}  // namespace bp
