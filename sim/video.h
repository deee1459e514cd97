// MP4 writing through ffmpeg (H.264): RGB frames piped to `ffmpeg -f rawvideo`, the file renamed
// into place only when ffmpeg succeeded (a reader never sees half a video).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

namespace embody::sim {

/// True when an ffmpeg is on the PATH.
bool HaveFfmpeg();

/// Writes `path` from the frames `next` produces (width*height*3 RGB each; it returns false when
/// there are no more) at `fps`. Width and height must be even. @throws std::runtime_error naming
/// ffmpeg's failure (nothing is left at `path` then).
void WriteVideo(const std::filesystem::path& path, int width, int height, double fps,
                const std::function<bool(std::vector<std::uint8_t>* frame)>& next);

}  // namespace embody::sim
