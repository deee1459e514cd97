// One writer per output: every program that writes an output (a dataset, a checkpoint, a model
// folder, a latent cache, results) holds an advisory lock on it for the whole run, so that a second
// program pointed at the same output is refused at once instead of both clobbering it.
//
// The lock is flock(2) on `<output>.lock` beside the output (a folder output: beside the folder).
// The file says who holds it (pid, host, start time, program). The kernel drops the lock when its
// holder exits or dies (kill -9 included): a lock file left behind by a dead holder is taken over
// silently. The holder removes the file when it releases the lock. Works on local file systems and
// on NFS (Linux emulates flock there with byte-range locks).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace embody::sim {

/// Another live process holds the output's lock; the message names it.
class OutputInUseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The lock of one output, held while the object lives (movable, not copyable).
class OutputLock {
 public:
  /// Takes the lock of `output` for `program`, or throws OutputInUseError
  /// ("<output> is being written by pid N on HOST since TIME (program)"). Creates the output's
  /// folder if needed (and removes the folders it made if they are empty when the lock is released). @throws std::runtime_error when the lock file
  /// cannot be created.
  static OutputLock Acquire(const std::filesystem::path& output, const std::string& program);

  /// Like Acquire, but waits for a live holder to finish; `on_wait(holder)` is called once, before
  /// waiting, with the holder's description (e.g. to print "waiting for ...").
  static OutputLock Wait(const std::filesystem::path& output, const std::string& program,
                         const std::function<void(const std::string& holder)>& on_wait = nullptr);

  /// The lock file of `output`: `<output>.lock` (a trailing '/' of a folder is dropped).
  static std::filesystem::path LockPath(const std::filesystem::path& output);

  /// Who holds the lock of `output` now ("pid N on HOST since TIME (program)"), or nothing when no
  /// live process does.
  static std::optional<std::string> Holder(const std::filesystem::path& output);

  OutputLock(OutputLock&& other) noexcept;
  OutputLock& operator=(OutputLock&& other) noexcept;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  /// Releases the lock and removes the lock file (and the folders made for it, if left empty).
  ~OutputLock();

  const std::filesystem::path& path() const { return path_; }

 private:
  OutputLock(std::filesystem::path path, int fd, std::vector<std::filesystem::path> made) : path_(std::move(path)), fd_(fd), made_(std::move(made)) {}
  static OutputLock Take(const std::filesystem::path& output, const std::string& program, bool wait,
                         const std::function<void(const std::string&)>& on_wait);
  static OutputLock TakeLoop(const std::filesystem::path& path, const std::filesystem::path& output, const std::string& program, bool wait,
                             const std::function<void(const std::string&)>& on_wait, std::vector<std::filesystem::path> made);
  void Release();

  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<std::filesystem::path> made_;  ///< folders made for the lock file, deepest first
};

}  // namespace embody::sim
