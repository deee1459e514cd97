#include "sim/image_io.h"

#include <cstring>
#include <system_error>

#include <stb_image.h>
#include <stb_image_write.h>

#include "sim/atomic_file.h"
#include "sim/world.h"

namespace embody::sim {

void WritePng(const std::filesystem::path& path, const Image& image) {
  if (image.width <= 0 || image.height <= 0 || image.rgb.size() != static_cast<size_t>(3 * image.width * image.height)) {
    throw SimError("cannot write " + path.string() + ": image is empty or its size is inconsistent");
  }
  try {
    WriteFileAtomically(path, [&](const std::filesystem::path& tmp) {
      if (!stbi_write_png(tmp.c_str(), image.width, image.height, 3, image.rgb.data(), 3 * image.width)) {
        throw SimError("cannot write " + path.string() + " (is the folder writable?)");
      }
    });
  } catch (const AtomicWriteError& e) {
    throw SimError(e.what());
  }
}

Image ReadPng(const std::filesystem::path& path) {
  int w = 0, h = 0, channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &channels, 3);
  if (pixels == nullptr) {
    throw SimError("cannot read " + path.string() + ": " + stbi_failure_reason());
  }
  Image image;
  image.width = w;
  image.height = h;
  image.rgb.assign(pixels, pixels + 3 * w * h);
  stbi_image_free(pixels);
  return image;
}

}  // namespace embody::sim
