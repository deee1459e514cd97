// Writing a file so that readers see the old file or the new one, never half of it: the content
// goes to `<path>.tmp` in the same folder, which is then renamed over `path` (atomic on POSIX file
// systems). Every program's outputs go through it (datasets, checkpoints, caches, images, JSON).
#pragma once

#include <filesystem>
#include <functional>
#include <stdexcept>

namespace embody::sim {

/// A file that could not be written or moved into place.
class AtomicWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The temporary name WriteFileAtomically writes under (resume logic cleans such leftovers).
std::filesystem::path TemporaryPath(const std::filesystem::path& path);

/// Calls `write(tmp)` to produce the content under TemporaryPath(path) (the callee closes the file
/// before returning), creating the folder if needed, then renames it over `path`. If `write` throws
/// or the rename fails, the temporary file is removed: `path` is unchanged. Rename failures throw
/// AtomicWriteError naming `path`; the writer's own exceptions pass through.
void WriteFileAtomically(const std::filesystem::path& path, const std::function<void(const std::filesystem::path& tmp)>& write);

}  // namespace embody::sim
