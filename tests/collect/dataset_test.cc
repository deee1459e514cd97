// Tests for collect/dataset.cc (the reader): a damaged episode is named with what is wrong, a
// truncated or foreign file is a clear error. Real HDF5 files.
#include "collect/dataset.h"

#include <hdf5.h>

#include <cmath>
#include <fstream>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/collect/collect_fixture.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Writes NaN into row `step` of a float dataset of an episode (through the top file: the episode may
// live in a file of its own, an external link).
void PoisonRow(const std::string& file, const std::string& path, hsize_t step) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  ASSERT_GE(d, 0);
  const hid_t space = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  std::vector<float> values(dims[0] * dims[1]);
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  values[step * dims[1]] = std::numeric_limits<float>::quiet_NaN();
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
}

// Tests CheckEpisode: a sound collection passes (frames read back too); a non-finite value in one
// episode is refused naming the file, the episode, the array and the step, and the other episodes
// still pass.
TEST_F(CollectorTest, CheckEpisodeNamesWhatIsWrong) {
  CollectConfig c = Small("check.h5", 2);
  c.workers = 1;
  Run(c);
  {
    const Dataset ds(c.out);
    EXPECT_NO_THROW(ds.CheckAll(/*frames=*/true));
  }
  PoisonRow(c.out, "data/demo_1/obs/robot0_eef_pos", 3);
  const Dataset ds(c.out);
  EXPECT_NO_THROW(ds.CheckEpisode("demo_0"));
  try {
    ds.CheckEpisode("demo_1");
    FAIL() << "a NaN was accepted";
  } catch (const DatasetError& e) {
    EXPECT_THAT(e.what(), HasSubstr("check.h5: demo_1"));
    EXPECT_THAT(e.what(), HasSubstr("obs/robot0_eef_pos has a non-finite value"));
    EXPECT_THAT(e.what(), HasSubstr("at step 3"));
  }
  EXPECT_THROW(ds.CheckAll(), DatasetError);
}

// Tests that a truncated or foreign file is a clear error for the reader, info and merge.
TEST_F(CollectorTest, CorruptInputsFailClearly) {
  const fs::path junk = dir_ / "junk.h5";
  std::ofstream(junk) << "this is not HDF5";
  try {
    Dataset ds(junk);
    FAIL() << "expected DatasetError";
  } catch (const DatasetError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a readable HDF5 file"));
  }
  const std::string bin = SIMCOLLECT_BIN;
  EXPECT_NE(0, std::system((bin + " info " + junk.string() + " 2> /dev/null").c_str()));
  const std::string merged = (dir_ / "m.h5").string();
  EXPECT_NE(0, std::system((bin + " merge " + merged + " " + junk.string() + " 2> /dev/null").c_str()));
  EXPECT_FALSE(fs::exists(merged));
  EXPECT_THROW(Dataset(dir_ / "missing.h5"), DatasetError);
}

}  // namespace
}  // namespace embody::collect
