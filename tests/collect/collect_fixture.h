// The collect tests' shared setup: a fresh folder per test and a small franka collection config
// (real MuJoCo, real rendering, real HDF5 files).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "collect/collector.h"

namespace embody::collect {

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = std::filesystem::temp_directory_path() /
           ("embody_collect_" + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // 6 franka episodes of 8 steps, 32 px, two cameras, two workers, seed 42, into dir_ / name.
  CollectConfig Small(const std::string& name, int episodes = 6) const {
    CollectConfig c;
    c.robot = "franka";
    c.episodes = episodes;
    c.steps = 8;
    c.image_size = 32;
    c.cameras = 2;
    c.workers = 2;
    c.seed = 42;
    c.out = (dir_ / name).string();
    return c;
  }
  static CollectSummary Run(const CollectConfig& c) { return Collect(c, {.enabled = false}); }

  std::filesystem::path dir_;
};

}  // namespace embody::collect
