#include "sim/atomic_file.h"

namespace embody::sim {

namespace fs = std::filesystem;

fs::path TemporaryPath(const fs::path& path) { return fs::path(path.string() + ".tmp"); }

void WriteFileAtomically(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
  const fs::path tmp = TemporaryPath(path);
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  try {
    write(tmp);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(tmp, ec);
    throw AtomicWriteError("cannot write " + path.string() + ": " + reason);
  }
}

}  // namespace embody::sim
