#include "data/jpeg_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"

#if BRAINPROP_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace bp {
namespace {

std::atomic<int64_t> g_decoded{0};

#if BRAINPROP_HAVE_TURBOJPEG

// Reads the whole file into `bytes` (reused between files); returns "" or the reason.
std::string read_bytes(const std::string& path, std::vector<unsigned char>& bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return std::string("cannot stat: ") + std::strerror(err);
  }
  bytes.resize(size_t(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return n == 0 ? std::string("file shrank while being read")
                    : std::string("read error: ") + std::strerror(err);
    }
    done += size_t(n);
  }
  ::close(fd);
  if (bytes.empty()) return "empty file";
  return "";
}

// Limits on a JPEG's size (the format allows 65500 x 65500): 8192 x 8192 or 16384 x 4096 at
// most, 192 MiB of RGB per image.
constexpr int kMaxSide = 16384;
constexpr int64_t kMaxPixels = int64_t(1) << 26;

// What decoding needs from a JPEG's header.
struct JpegHeader {
  JpegSize size;
  bool cmyk = false;  // a CMYK or YCCK (Adobe) JPEG
};

// CMYK as libjpeg delivers it from an Adobe (Photoshop) CMYK or YCCK JPEG to RGB. Those files
// store every channel inverted (255 = no ink), which is what nearly all CMYK JPEGs are;
// libjpeg-turbo passes the stored values through unchanged, and its own CMYK-to-RGB
// conversion (cmyk.h, used by tjLoadImage) reads them the same way, as Pillow does:
// R = C * K / 255, G = M * K / 255, B = Y * K / 255, rounded. A naive formula, not colour
// management: no ICC profile is applied.
void cmyk_to_rgb(const unsigned char* cmyk, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i) {
    const unsigned k = cmyk[4 * i + 3];
    for (int c = 0; c < 3; ++c) rgb[3 * i + size_t(c)] = uint8_t((cmyk[4 * i + size_t(c)] * k + 127) / 255);
  }
}

// One TurboJPEG decompressor; a handle must not be shared between threads.
class Decompressor {
 public:
  Decompressor() : handle_(tjInitDecompress()) {}
  ~Decompressor() {
    if (handle_) tjDestroy(handle_);
  }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Fills `header` from the header of `jpeg`; returns "" or the reason.
  std::string header(const std::vector<unsigned char>& jpeg, JpegHeader& header) {
    if (!handle_) return "cannot create a TurboJPEG decompressor";
    int width = 0, height = 0, subsamp = 0, colorspace = 0;
    const int rc = tjDecompressHeader3(handle_, jpeg.data(), static_cast<unsigned long>(jpeg.size()), &width,
                                       &height, &subsamp, &colorspace);
    if (rc != 0) {
      return std::string("not a readable JPEG: ") + tjGetErrorStr2(handle_);
    }
    // The header's size decides the allocation for the whole data set (every image has the
    // first one's size): refuse what no training image is, before a damaged or hostile header
    // (65500 x 65500 is valid JPEG) makes us allocate gigabytes per image.
    if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide ||
        int64_t(width) * height > kMaxPixels) {
      return "image is " + std::to_string(height) + "x" + std::to_string(width) +
             ", larger than brainprop decodes (at most " + std::to_string(kMaxSide) + " on a side and " +
             std::to_string(kMaxPixels) + " pixels; images are not resized)";
    }
    header.size = {height, width};
    header.cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    return "";
  }

  // Decodes an image whose header said height x width into `out` (RGB).
  std::string decode(const std::vector<unsigned char>& jpeg, const JpegHeader& header, uint8_t* out) {
    const int height = header.size.height, width = header.size.width;
    // A warning (e.g. "premature end of JPEG file") also fails here: a damaged image is an
    // error, never silently half-grey training data.
    if (!header.cmyk) {
      const int rc = tjDecompress2(handle_, jpeg.data(), static_cast<unsigned long>(jpeg.size()), out,
                                   width, 0, height, TJPF_RGB, 0);
      if (rc != 0) return std::string("corrupt JPEG: ") + tjGetErrorStr2(handle_);
      return "";
    }
    // CMYK and YCCK JPEGs decode only to CMYK (libjpeg-turbo converts YCCK to CMYK itself).
    cmyk_.resize(size_t(height) * size_t(width) * 4);
    const int rc = tjDecompress2(handle_, jpeg.data(), static_cast<unsigned long>(jpeg.size()), cmyk_.data(),
                                 width, 0, height, TJPF_CMYK, 0);
    if (rc != 0) return std::string("corrupt JPEG (CMYK): ") + tjGetErrorStr2(handle_);
    cmyk_to_rgb(cmyk_.data(), size_t(height) * size_t(width), out);
    return "";
  }

 private:
  tjhandle handle_;
  std::vector<unsigned char> cmyk_;  // CMYK pixels before their conversion, reused
};

std::string dims(const JpegSize& size) {
  return std::to_string(size.height) + "x" + std::to_string(size.width);
}

#endif  // BRAINPROP_HAVE_TURBOJPEG

}  // namespace

bool jpeg_support_compiled() {
#if BRAINPROP_HAVE_TURBOJPEG
  return true;
#else
  return false;
#endif
}

void require_jpeg_support(const std::string& what) {
  if (!jpeg_support_compiled()) {
    BP_FAIL(what << ": this build has no libjpeg-turbo: install libturbojpeg0-dev and rebuild");
  }
}

int64_t jpeg_images_decoded() { return g_decoded.load(); }

#if BRAINPROP_HAVE_TURBOJPEG

JpegSize read_jpeg_size(const std::string& path) {
  std::vector<unsigned char> bytes;
  std::string why = read_bytes(path, bytes);
  JpegHeader header;
  Decompressor decompressor;
  if (why.empty()) why = decompressor.header(bytes, header);
  if (!why.empty()) BP_FAIL(path << ": " << why);
  return header.size;
}

void decode_jpegs_rgb(const std::vector<std::string>& paths, int height, int width, uint8_t* out) {
  const int64_t n = int64_t(paths.size());
  const size_t image_bytes = size_t(height) * size_t(width) * 3;
  // Threads cannot throw out of the parallel loop: the lowest failing index and its reason are
  // kept, and files after it are skipped, so the error names the first bad file in order.
  int64_t first_bad = n;
  std::string first_why;
#pragma omp parallel
  {
    Decompressor decompressor;
    std::vector<unsigned char> bytes;
    int64_t decoded = 0;
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
      int64_t bad_so_far;
#pragma omp atomic read
      bad_so_far = first_bad;
      if (i > bad_so_far) continue;
      std::string why = read_bytes(paths[size_t(i)], bytes);
      JpegHeader header;
      if (why.empty()) why = decompressor.header(bytes, header);
      if (why.empty() && (header.size.height != height || header.size.width != width)) {
        why = "image is " + dims(header.size) + ", the data set's images are " + dims({height, width}) +
              " (images are not resized)";
      }
      if (why.empty()) why = decompressor.decode(bytes, header, out + size_t(i) * image_bytes);
      if (why.empty()) {
        ++decoded;
        continue;
      }
#pragma omp critical(bp_jpeg_first_bad)
      if (i < first_bad) {
#pragma omp atomic write
        first_bad = i;
        first_why = why;
      }
    }
    g_decoded += decoded;
  }
  if (first_bad < n) BP_FAIL(paths[size_t(first_bad)] << ": " << first_why);
}

#else

JpegSize read_jpeg_size(const std::string& path) {
  require_jpeg_support(path);
  return {};
}

void decode_jpegs_rgb(const std::vector<std::string>& paths, int, int, uint8_t*) {
  require_jpeg_support(paths.empty() ? std::string("JPEG decoding") : paths.front());
}

#endif

}  // namespace bp
