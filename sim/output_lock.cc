#include "sim/output_lock.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace embody::sim {
namespace {

namespace fs = std::filesystem;

std::string Describe(const std::string& program) {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return "pid " + std::to_string(getpid()) + " on " + host + " since " + when + " (" + program + ")";
}

// The holder's description; a holder writes it right after taking the lock, so an empty file is
// read again for a moment before giving up on the details.
std::string ReadHolder(int fd, const fs::path& lock_file) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    char buffer[512];
    const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
    if (n > 0) {
      std::string text(buffer, static_cast<size_t>(n));
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      if (!text.empty()) return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "another process (" + lock_file.string() + " names none)";
}

// Whether `fd` is still the file at `path` (a releasing holder unlinks the file it locked).
bool SameFile(int fd, const fs::path& path) {
  struct stat open_file {};
  struct stat named {};
  if (fstat(fd, &open_file) != 0 || stat(path.c_str(), &named) != 0) return false;
  return open_file.st_ino == named.st_ino && open_file.st_dev == named.st_dev;
}

std::string Errno() { return std::strerror(errno); }

}  // namespace

fs::path OutputLock::LockPath(const fs::path& output) {
  std::string s = output.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return fs::path(s + ".lock");
}

OutputLock OutputLock::Acquire(const fs::path& output, const std::string& program) { return Take(output, program, false, nullptr); }

OutputLock OutputLock::Wait(const fs::path& output, const std::string& program, const std::function<void(const std::string&)>& on_wait) {
  return Take(output, program, true, on_wait);
}

OutputLock OutputLock::Take(const fs::path& output, const std::string& program, bool wait, const std::function<void(const std::string&)>& on_wait) {
  const fs::path path = LockPath(output);
  // The folders made for the lock file, deepest first: removed again if still empty at release (a
  // run refused before it wrote anything leaves nothing behind).
  std::vector<fs::path> made;
  std::error_code ec;
  for (fs::path p = path.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    made.push_back(p);
    if (p == p.parent_path()) break;
  }
  try {  // TakeLoop makes the folders
    return TakeLoop(path, output, program, wait, on_wait, made);
  } catch (...) {
    for (const fs::path& p : made) fs::remove(p, ec);  // only empty folders go
    throw;
  }
}

OutputLock OutputLock::TakeLoop(const fs::path& path, const fs::path& output, const std::string& program, bool wait,
                                const std::function<void(const std::string&)>& on_wait, std::vector<fs::path> made) {
  bool told = false;
  for (int vanished = 0;;) {
    // A releasing holder removes the folders it made once empty: made again here, and a folder that
    // vanished between that and the open is made again too.
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && ++vanished < 100) continue;
    if (fd < 0) {
      const std::string dir = path.has_parent_path() ? path.parent_path().string() : ".";
      throw std::runtime_error("cannot write to " + dir + " (the lock file " + path.filename().string() + " of " + output.filename().string() + ": " +
                               Errno() + ")");
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) {
        const std::string reason = Errno();
        close(fd);
        throw std::runtime_error("cannot lock " + path.string() + ": " + reason);
      }
      const std::string holder = ReadHolder(fd, path);
      if (!wait) {
        close(fd);
        throw OutputInUseError(output.string() + " is being written by " + holder + "; wait for it to finish, or stop it");
      }
      if (!told && on_wait) on_wait(holder);
      told = true;
      if (flock(fd, LOCK_EX) != 0) {
        const std::string reason = Errno();
        close(fd);
        throw std::runtime_error("cannot lock " + path.string() + ": " + reason);
      }
    }
    // A holder that released the lock meanwhile removed the file we opened: take the new one.
    if (!SameFile(fd, path)) {
      close(fd);
      continue;
    }
    const std::string text = Describe(program) + "\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      const std::string reason = Errno();
      unlink(path.c_str());
      close(fd);
      throw std::runtime_error("cannot write the lock file " + path.string() + ": " + reason);
    }
    return OutputLock(path, fd, std::move(made));
  }
}

std::optional<std::string> OutputLock::Holder(const fs::path& output) {
  const fs::path path = LockPath(output);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> holder;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) holder = ReadHolder(fd, path);
  }
  close(fd);  // also drops the shared lock when it was taken
  return holder;
}

OutputLock::OutputLock(OutputLock&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_), made_(std::move(other.made_)) { other.fd_ = -1; }

OutputLock& OutputLock::operator=(OutputLock&& other) noexcept {
  if (this != &other) {
    Release();
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    made_ = std::move(other.made_);
    other.fd_ = -1;
  }
  return *this;
}

OutputLock::~OutputLock() { Release(); }

void OutputLock::Release() {
  if (fd_ < 0) return;
  // Unlinked while still held, so that a waiter on the old file sees it is gone and retries.
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
  std::error_code ec;
  for (const fs::path& p : made_) fs::remove(p, ec);  // the folders made for the lock, if the run left them empty
}

}  // namespace embody::sim
