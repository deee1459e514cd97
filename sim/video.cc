#include "sim/video.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "sim/atomic_file.h"

namespace embody::sim {

bool HaveFfmpeg() { return std::system("command -v ffmpeg > /dev/null 2>&1") == 0; }

void WriteVideo(const std::filesystem::path& path, int width, int height, double fps,
                const std::function<bool(std::vector<std::uint8_t>* frame)>& next) {
  if (width <= 0 || height <= 0 || width % 2 || height % 2) {
    throw std::runtime_error("video frames must have even sides, got " + std::to_string(width) + "x" + std::to_string(height));
  }
  if (!HaveFfmpeg()) throw std::runtime_error("writing " + path.string() + " needs ffmpeg (apt-get install ffmpeg; make deps installs it)");
  WriteFileAtomically(path, [&](const std::filesystem::path& tmp) {
    char cmd[1024];
    std::snprintf(cmd, sizeof cmd,
                  "ffmpeg -y -loglevel error -f rawvideo -pix_fmt rgb24 -s %dx%d -r %g -i - -c:v libx264 -pix_fmt yuv420p -f mp4 '%s'", width, height,
                  fps, tmp.c_str());
    FILE* pipe = popen(cmd, "w");
    if (!pipe) throw std::runtime_error("cannot start ffmpeg");
    std::vector<std::uint8_t> frame;
    const size_t bytes = static_cast<size_t>(width) * height * 3;
    bool ok = true;
    while (ok && next(&frame)) {
      if (frame.size() != bytes) {
        pclose(pipe);
        throw std::runtime_error("a video frame has " + std::to_string(frame.size()) + " bytes, not " + std::to_string(bytes));
      }
      ok = std::fwrite(frame.data(), 1, bytes, pipe) == bytes;
    }
    if (pclose(pipe) != 0 || !ok) throw std::runtime_error("ffmpeg failed to write " + path.string());
  });
}

}  // namespace embody::sim
