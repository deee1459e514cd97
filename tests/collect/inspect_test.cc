// Tests for collect/inspect.cc: what `simcollect info` says of a dataset (the held-out episodes
// included), and merging shards (links, not copies; mismatched shards refused; OUT's lock).
#include "collect/inspect.h"

#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/collector.h"
#include "collect/dataset.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = fs::temp_directory_path() / ("embody_inspect_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  CollectConfig Config(const std::string& out, int episodes, const std::string& shard = "0/1") const {
    CollectConfig c;
    c.episodes = episodes;
    c.steps = 4;
    c.image_size = 16;
    c.seed = 9;
    c.workers = 1;
    c.out = (dir_ / out).string();
    ParseShard(shard, &c.shard_index, &c.shard_count);
    return c;
  }
  fs::path dir_;
};

// Tests that info counts the episodes and lists the held-out ones (every tenth), the first eight.
TEST_F(InspectTest, InfoListsTheHeldOutEpisodes) {
  Collect(Config("a.h5", 20), {.enabled = false});
  const std::string info = DescribeDataset(dir_ / "a.h5");
  EXPECT_THAT(info, HasSubstr("episodes:    20 (train 18, valid 2)"));
  EXPECT_THAT(info, HasSubstr("held out:    demo_9, demo_19\n"));
}

// Tests that merged shards hold every episode once, as links into the shards, and that shards of
// other options, or the same episode twice, are refused.
TEST_F(InspectTest, MergeJoinsShardsAndRefusesMismatches) {
  Collect(Config("s0.h5", 12, "0/2"), {.enabled = false});
  Collect(Config("s1.h5", 12, "1/2"), {.enabled = false});
  EXPECT_EQ(12, MergeShards(dir_ / "m.h5", {dir_ / "s0.h5", dir_ / "s1.h5"}, false));
  const Dataset merged(dir_ / "m.h5");
  EXPECT_EQ(12u, merged.demos().size());
  EXPECT_EQ(fs::canonical(dir_ / "s1.h5.parts" / EpisodeFileName(1)), fs::canonical(merged.LinkTarget("demo_1").first));
  EXPECT_THROW(MergeShards(dir_ / "m.h5", {dir_ / "s0.h5"}, false), CollectError);  // exists, no --overwrite
  EXPECT_THROW(MergeShards(dir_ / "twice.h5", {dir_ / "s0.h5", dir_ / "s0.h5"}, false), CollectError);
  CollectConfig other = Config("o.h5", 12, "1/2");
  other.seed = 10;
  Collect(other, {.enabled = false});
  try {
    MergeShards(dir_ / "mixed.h5", {dir_ / "s0.h5", dir_ / "o.h5"}, false);
    FAIL() << "shards of other options were merged";
  } catch (const CollectError& e) {
    EXPECT_THAT(e.what(), HasSubstr("collected with other options"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "mixed.h5"));
  // OUT being written by another writer is refused, naming it.
  const sim::OutputLock held = sim::OutputLock::Acquire(dir_ / "busy.h5", "a collection");
  try {
    MergeShards(dir_ / "busy.h5", {dir_ / "s0.h5", dir_ / "s1.h5"}, false);
    FAIL() << "merged into an output another writer holds";
  } catch (const CollectError& e) {
    EXPECT_THAT(e.what(), HasSubstr("busy.h5 is being written by pid " + std::to_string(getpid())));
  }
}

}  // namespace
}  // namespace embody::collect
