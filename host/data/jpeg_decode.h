// JPEG decoding with libjpeg-turbo's TurboJPEG API, in parallel over the OpenMP threads.
// Without libjpeg-turbo at build time every function here throws a bp::Error that says so.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bp {

// Whether this build can decode JPEGs (BRAINPROP_HAVE_TURBOJPEG).
bool jpeg_support_compiled();

// Throws "this build has no libjpeg-turbo ..." unless jpeg_support_compiled(); `what` names
// the data set that needed it.
void require_jpeg_support(const std::string& what);

struct JpegSize {
  int height = 0, width = 0;
};

// The image size from `path`'s header; throws bp::Error naming `path` if it is unreadable,
// not a JPEG, or larger than brainprop decodes (16384 on a side, 2^26 pixels: the header's
// size decides the allocation, and JPEG allows 65500 x 65500).
JpegSize read_jpeg_size(const std::string& path);

// Decodes every file of `paths` to RGB (grayscale JPEGs come out as R = G = B; CMYK and YCCK
// JPEGs are taken as Adobe's inverted CMYK, R = C * K / 255 and so on) into `out`,
// paths.size() * height * width * 3 bytes, image i at offset i * height * width * 3.
// Every image must be height x width: no resizing. Throws bp::Error naming the first file
// (in `paths` order) that is unreadable, corrupt or of another size.
void decode_jpegs_rgb(const std::vector<std::string>& paths, int height, int width, uint8_t* out);

// How many images decode_jpegs_rgb has decoded in this process (tests use it to tell a cache
// hit from a decode).
int64_t jpeg_images_decoded();

}  // namespace bp
