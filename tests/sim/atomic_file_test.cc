// Tests for sim/atomic_file.h: a failed write leaves the old file and no temporary behind.
#include "sim/atomic_file.h"

#include <unistd.h>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace embody::sim {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::stringstream s;
  s << std::ifstream(p).rdbuf();
  return s.str();
}

TEST(AtomicFileTest, ReplacesOnSuccessAndKeepsTheOldFileOnFailure) {
  const fs::path dir = fs::temp_directory_path() / ("embody_atomic_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const fs::path path = dir / "sub" / "out.txt";  // the folder is created
  WriteFileAtomically(path, [](const fs::path& tmp) { std::ofstream(tmp) << "first"; });
  EXPECT_EQ(Read(path), "first");
  // A writer that fails halfway: the old content stays, no temporary is left.
  EXPECT_THROW(WriteFileAtomically(path,
                                   [](const fs::path& tmp) {
                                     std::ofstream(tmp) << "half";
                                     throw std::runtime_error("disk full");
                                   }),
               std::runtime_error);
  EXPECT_EQ(Read(path), "first");
  EXPECT_FALSE(fs::exists(TemporaryPath(path)));
  // A rename that cannot happen (the target is a non-empty folder): AtomicWriteError naming it.
  fs::create_directories(dir / "busy" / "x");
  try {
    WriteFileAtomically(dir / "busy", [](const fs::path& tmp) { std::ofstream(tmp) << "y"; });
    FAIL() << "renamed over a non-empty folder";
  } catch (const AtomicWriteError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "busy").string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(TemporaryPath(dir / "busy")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace embody::sim
