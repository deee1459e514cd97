// Tests for sim/output_lock.cc: one writer per output, across processes, and a dead holder's lock
// taken over.
#include "sim/output_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace embody::sim {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("embody_lock_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  return dir;
}

// A child process that takes the lock of `output`, then sleeps `hold_ms` (or until killed).
pid_t HoldInChild(const fs::path& output, int hold_ms) {
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      OutputLock lock = OutputLock::Acquire(output, "holder");
      std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    } catch (...) {
      _exit(3);
    }
    _exit(0);
  }
  // Wait until the child holds it.
  for (int i = 0; i < 500 && !OutputLock::Holder(output); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return pid;
}

// Tests that a second lock of a held output is refused naming the holder's pid and program, and
// that releasing it removes the lock file and frees the output.
TEST(OutputLockTest, SecondWriterRefusedNamingTheHolder) {
  const fs::path dir = TempDir("second");
  const fs::path out = dir / "sub" / "data.h5";
  {
    OutputLock first = OutputLock::Acquire(out, "first-program");
    EXPECT_EQ(OutputLock::LockPath(out), dir / "sub" / "data.h5.lock");
    EXPECT_TRUE(fs::exists(OutputLock::LockPath(out)));  // the folder was created for it
    try {
      OutputLock::Acquire(out, "second-program");
      FAIL() << "a second writer was let in";
    } catch (const OutputInUseError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(out.string() + " is being written by pid " + std::to_string(getpid()) + " on "), std::string::npos) << message;
      EXPECT_NE(message.find("(first-program)"), std::string::npos) << message;
      EXPECT_NE(message.find(" since "), std::string::npos) << message;
    }
    ASSERT_TRUE(OutputLock::Holder(out).has_value());
    EXPECT_NE(OutputLock::Holder(out)->find("first-program"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(OutputLock::LockPath(out)));
  EXPECT_FALSE(fs::exists(dir)) << "the folders made for the lock, left empty, are removed";
  EXPECT_FALSE(OutputLock::Holder(out).has_value());
  {
    OutputLock third = OutputLock::Acquire(out, "third-program");
    std::ofstream(out) << "written";  // the run wrote its output: its folder stays
  }
  EXPECT_TRUE(fs::exists(out));
  fs::remove_all(dir);
}

// Tests that a folder output's lock sits beside the folder, with or without a trailing slash.
TEST(OutputLockTest, FolderOutputLockedBesideIt) {
  EXPECT_EQ(OutputLock::LockPath("models/franka/"), fs::path("models/franka.lock"));
  EXPECT_EQ(OutputLock::LockPath("models/franka"), fs::path("models/franka.lock"));
}

// Tests that another process's lock refuses this one with that process's pid, and that after
// kill -9 of the holder (its lock file left behind) a new writer takes the output silently.
TEST(OutputLockTest, KilledHolderLeavesAStaleFileThatIsTakenOver) {
  const fs::path dir = TempDir("killed");
  const fs::path out = dir / "model";
  const pid_t child = HoldInChild(out, 60000);
  ASSERT_TRUE(OutputLock::Holder(out).has_value());
  try {
    OutputLock::Acquire(out, "me");
    FAIL() << "the child's lock was not seen";
  } catch (const OutputInUseError& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(child) + " on "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(holder)"), std::string::npos) << e.what();
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(fs::exists(OutputLock::LockPath(out)));  // left behind by the dead holder
  EXPECT_FALSE(OutputLock::Holder(out).has_value());
  OutputLock mine = OutputLock::Acquire(out, "me");
  EXPECT_NE(OutputLock::Holder(out)->find("pid " + std::to_string(getpid())), std::string::npos);
  fs::remove_all(dir);
}

// Tests that Wait blocks until a live holder exits, saying once whom it waits for.
TEST(OutputLockTest, WaitTakesTheLockWhenTheHolderFinishes) {
  const fs::path dir = TempDir("wait");
  const fs::path out = dir / "cache.h5";
  const pid_t child = HoldInChild(out, 1000);
  int told = 0;
  std::string holder;
  const auto start = std::chrono::steady_clock::now();
  {
    OutputLock lock = OutputLock::Wait(out, "waiter", [&](const std::string& h) {
      ++told;
      holder = h;
    });
    EXPECT_EQ(told, 1);
    EXPECT_NE(holder.find("pid " + std::to_string(child)), std::string::npos) << holder;
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
    EXPECT_NE(OutputLock::Holder(out)->find("(waiter)"), std::string::npos);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Nobody holds it: Wait returns at once without calling back.
  told = 0;
  OutputLock again = OutputLock::Wait(out, "waiter", [&](const std::string&) { ++told; });
  EXPECT_EQ(told, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace embody::sim
