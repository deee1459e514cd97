// Where a process sits in a launch (torchrun's and Slurm's variables) and one-process data-parallel
// helpers. Real multi-process training: tests/adapt/data_parallel_test.sh and tests/cluster/.
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/distributed.h"
#include "adapt/core/error.h"
#include "adapt/core/training.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;

LaunchInfo Read(const std::map<std::string, std::string>& env) {
  return ReadLaunchInfo([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string Error(const std::map<std::string, std::string>& env) {
  try {
    Read(env);
  } catch (const AdaptError& e) {
    return e.what();
  }
  return "";
}

TEST(LaunchInfo, OneProcessWithoutVariables) {
  const LaunchInfo l = Read({});
  EXPECT_EQ(l.world_size, 1);
  EXPECT_EQ(l.rank, 0);
  EXPECT_EQ(l.launcher, "single process");
  // A Slurm batch script (no srun step) is one process too, whatever its allocation.
  EXPECT_EQ(Read({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}}).world_size, 1);
}

TEST(LaunchInfo, Torchrun) {
  const LaunchInfo l =
      Read({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(l.launcher, "torchrun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 8);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_world_size, 2);
  EXPECT_EQ(l.master_addr, "node7");
  EXPECT_EQ(l.master_port, 29400);
}

TEST(LaunchInfo, SlurmStep) {
  const LaunchInfo l = Read({{"SLURM_STEP_NUM_TASKS", "4"},
                             {"SLURM_PROCID", "2"},
                             {"SLURM_LOCALID", "0"},
                             {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                             {"SLURM_STEP_NODELIST", "gpu[07-08]"},
                             {"SLURM_JOB_ID", "1234"}});
  EXPECT_EQ(l.launcher, "slurm");
  EXPECT_EQ(l.rank, 2);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_world_size, 2);
  EXPECT_EQ(l.master_addr, "gpu07");
  EXPECT_EQ(l.master_port, 20000 + 1234);
  // MASTER_ADDR / MASTER_PORT still win under Slurm.
  const LaunchInfo m = Read({{"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_PROCID", "1"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "5000"}});
  EXPECT_EQ(m.master_addr, "10.0.0.1");
  EXPECT_EQ(m.master_port, 5000);
}

TEST(LaunchInfo, RefusesBadValues) {
  EXPECT_THAT(Error({{"RANK", "0"}}), HasSubstr("RANK and WORLD_SIZE must be set together"));
  EXPECT_THAT(Error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), HasSubstr("not below the world size"));
  EXPECT_THAT(Error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), HasSubstr("RANK=x"));
  EXPECT_THAT(Error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}), HasSubstr("not a TCP port"));
  EXPECT_THAT(Error({{"SLURM_STEP_NUM_TASKS", "2"}}), HasSubstr("SLURM_PROCID"));
}

TEST(LaunchInfo, FirstHostOfNodeList) {
  EXPECT_EQ(FirstHostOfNodeList("vm"), "vm");
  EXPECT_EQ(FirstHostOfNodeList("a1,b2"), "a1");
  EXPECT_EQ(FirstHostOfNodeList("gpu[03-05,9],cpu1"), "gpu03");
  EXPECT_EQ(FirstHostOfNodeList("n[7]"), "n7");
  EXPECT_EQ(FirstHostOfNodeList("cpu1,gpu[1-2]"), "cpu1");
}

TEST(LaunchInfo, ThreadsShareTheNode) {
  LaunchInfo l;
  EXPECT_EQ(ThreadsPerRank(3, l), 3);
  l.local_world_size = 1024;
  EXPECT_EQ(ThreadsPerRank(0, l), 1);
}

TEST(Device, ResolvesNamesAndRefusesOthers) {
  EXPECT_TRUE(ResolveDevice("cpu").is_cpu());
  EXPECT_EQ(ResolveDevice("auto").is_cuda(), torch::cuda::is_available());
  EXPECT_THROW(ResolveDevice("gpu"), AdaptError);
  if (!torch::cuda::is_available()) {
    try {
      ResolveDevice("cuda");
      FAIL() << "cuda accepted without CUDA";
    } catch (const AdaptError& e) {
      EXPECT_THAT(e.what(), HasSubstr("sees no CUDA device"));
    }
  }
}

TEST(DataParallel, OneProcessTakesTheWholeBatch) { EXPECT_EQ(ShareOf(nullptr, 7), (std::pair<int, int>{0, 7})); }

}  // namespace
}  // namespace embody::adapt
