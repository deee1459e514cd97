// Writing and reading RGB images as PNG (stb).
#pragma once

#include <filesystem>

#include "sim/renderer.h"

namespace embody::sim {

/// Writes `image` as PNG, atomically (temp file, then rename). @throws SimError when it cannot.
void WritePng(const std::filesystem::path& path, const Image& image);
/// Reads an 8-bit PNG as RGB. @throws SimError when the file is missing or not a PNG.
Image ReadPng(const std::filesystem::path& path);

}  // namespace embody::sim
