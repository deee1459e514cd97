// Tests for collect/hdf5_util.cc: arrays, strided row reads, the next-row views robomimic reads,
// attributes, and a damaged chunk that fails to read instead of reading back wrong.
#include "collect/hdf5_util.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <gtest/gtest.h>

namespace embody::collect::h5 {
namespace {

namespace fs = std::filesystem;

class Hdf5UtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("embody_hdf5_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Tests that an n-d array reads back with its shape, rows read back by range and by stride, and an
// out-of-range read is refused.
TEST_F(Hdf5UtilTest, ArraysAndStridedRowsReadBack) {
  const std::string path = (dir_ / "a.h5").string();
  std::vector<float> values(10 * 2 * 3);
  std::iota(values.begin(), values.end(), 0.0f);
  {
    Handle file = CreateFile(path);
    WriteArray<float>(file, "g/x", {10, 2, 3}, values.data(), 1, 1, true);
  }
  Handle file = OpenFile(path);
  std::vector<hsize_t> dims;
  EXPECT_EQ(values, ReadArray<float>(file, "g/x", &dims));
  EXPECT_EQ((std::vector<hsize_t>{10, 2, 3}), dims);
  const auto rows = ReadRows<float>(file, "g/x", 1, 3, &dims, 3);  // rows 1, 4, 7
  ASSERT_EQ(18u, rows.size());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(static_cast<float>((1 + 3 * i) * 6), rows[6 * i]) << "row " << 1 + 3 * i;
  EXPECT_THROW(ReadRows<float>(file, "g/x", 8, 2, nullptr, 2), DatasetError);  // row 10 of 0..9
  EXPECT_EQ((std::vector<std::string>{"x"}), ListNames(file, "g"));
  EXPECT_TRUE(Exists(file, "g/x"));
  EXPECT_FALSE(Exists(file, "g/y/z"));  // a missing parent is "false", not an error
}

// Tests robomimic's next_obs as a view: row t shows source row t + 1, the last row repeats.
TEST_F(Hdf5UtilTest, NextRowViewShiftsByOne) {
  const std::string path = (dir_ / "v.h5").string();
  const std::vector<double> values = {0, 1, 2, 3, 4, 5, 6, 7};  // 4 rows of 2
  {
    Handle file = CreateFile(path);
    WriteArray<double>(file, "obs/q", {4, 2}, values.data());
    WriteNextRowView(file, "next_obs/q", "/obs/q");
  }
  Handle file = OpenFile(path);
  EXPECT_EQ((std::vector<double>{2, 3, 4, 5, 6, 7, 6, 7}), ReadArray<double>(file, "next_obs/q"));
}

// Tests attributes of each type and strings.
TEST_F(Hdf5UtilTest, AttributesAndStrings) {
  const std::string path = (dir_ / "s.h5").string();
  {
    Handle file = CreateFile(path);
    Handle g = CreateGroup(file, "data");
    SetAttr(g, "name", std::string("franka"));
    SetAttr(g, "count", std::int64_t{42});
    SetAttr(g, "rate", 20.5);
    WriteStrings(file, "mask/valid", {"demo_9", "demo_19"});
  }
  Handle file = OpenFile(path);
  Handle g = OpenGroup(file, "data");
  EXPECT_EQ("franka", GetStringAttr(g, "name"));
  EXPECT_EQ(42, GetIntAttr(g, "count"));
  EXPECT_DOUBLE_EQ(20.5, GetDoubleAttr(g, "rate"));
  EXPECT_TRUE(HasAttr(g, "rate"));
  EXPECT_FALSE(HasAttr(g, "none"));
  EXPECT_THROW(GetStringAttr(g, "none"), DatasetError);
  EXPECT_EQ((std::vector<std::string>{"demo_9", "demo_19"}), ReadStrings(file, "mask/valid"));
}

// Tests that a damaged byte inside a checksummed, compressed chunk makes the read fail (a
// DatasetError), never return altered data.
TEST_F(Hdf5UtilTest, DamagedChunkFailsToRead) {
  const std::string path = (dir_ / "d.h5").string();
  std::vector<std::uint8_t> frames(4 * 16 * 16 * 3);
  for (size_t i = 0; i < frames.size(); ++i) frames[i] = static_cast<std::uint8_t>((i * 7919) % 251);
  {
    Handle file = CreateFile(path);
    WriteArray<std::uint8_t>(file, "obs/image", {4, 16, 16, 3}, frames.data(), 1, 1, true);
  }
  // Flip every byte of the file's second half (the chunks lie after the metadata).
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(f.tellg());
  std::vector<char> bytes(static_cast<size_t>(size));
  f.seekg(0);
  f.read(bytes.data(), size);
  for (std::streamoff i = size / 2; i < size; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(~bytes[static_cast<size_t>(i)]);
  f.seekp(0);
  f.write(bytes.data(), size);
  f.close();
  bool failed = false;
  try {
    Handle file = OpenFile(path);
    const auto back = ReadArray<std::uint8_t>(file, "obs/image");
    EXPECT_EQ(frames, back) << "damaged data read back altered";
  } catch (const DatasetError&) {
    failed = true;
  }
  EXPECT_TRUE(failed) << "the damage went unnoticed";
}

}  // namespace
}  // namespace embody::collect::h5
