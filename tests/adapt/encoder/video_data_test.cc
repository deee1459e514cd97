// Tests for adapt/encoder/video_data.cc: the train / held-out split, frames and clips as stored, clip
// cameras, draws by seed, refusals. A real (tiny) franka dataset of two cameras.
#include "adapt/encoder/video_data.h"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class VideoDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = new fs::path(fs::temp_directory_path() / ("embody_video_data_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    tiny::CollectRobot("franka", *dir_ / "two.h5", 10, 12, 4, /*cameras=*/2);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* VideoDataTest::dir_ = nullptr;

// Tests the split and the frames: train and held-out episodes are disjoint and together the
// dataset's; Frames returns the stored frames of the asked camera; a clip is its frames `stride` apart.
TEST_F(VideoDataTest, SplitFramesAndClipsAreTheStoredOnes) {
  const VideoData data({*dir_ / "two.h5"});
  EXPECT_EQ(32, data.image_size());
  EXPECT_EQ("camera0", data.camera());
  std::set<std::string> seen;
  for (const std::string split : {"train", "valid"}) {
    for (const auto& ep : data.episodes(split)) EXPECT_TRUE(seen.insert(ep.demo).second) << ep.demo << " is in both splits";
  }
  EXPECT_EQ(data.dataset(0).demos().size(), seen.size());
  EXPECT_FALSE(data.episodes("valid").empty());
  const EpisodeRef& ep = data.episodes("train").front();
  EXPECT_EQ(12, ep.frames);
  EXPECT_EQ(data.dataset(0).ReadFrames(ep.demo, "camera1", 2, 3), data.Frames(ep, 2, 3, "camera1"));
  EXPECT_EQ(data.dataset(0).ReadFrames(ep.demo, "camera0", 0, 1), data.Frames(ep, 0, 1));
  EXPECT_NE(data.Frames(ep, 0, 1, "camera0"), data.Frames(ep, 0, 1, "camera1"));
  const VideoData::ClipRef clip{&ep, 1, 0};
  const auto frames = data.ReadClip(clip, 3, 4);  // frames 1, 5, 9
  const size_t one = 32 * 32 * 3;
  ASSERT_EQ(3 * one, frames.size());
  for (int i = 0; i < 3; ++i) {
    const auto f = data.Frames(ep, 1 + 4 * i, 1);
    EXPECT_TRUE(std::equal(f.begin(), f.end(), frames.begin() + i * one)) << "clip frame " << i;
  }
}

// Tests draws: the same seed draws the same clips, every clip fits in its episode, and with two clip
// cameras both are drawn.
TEST_F(VideoDataTest, DrawsBySeedFitAndCoverTheClipCameras) {
  VideoData data({*dir_ / "two.h5"});
  data.SetClipCameras({"camera0", "camera1"});
  std::mt19937_64 a(9), b(9);
  std::set<int> cameras;
  for (int i = 0; i < 40; ++i) {
    const auto x = data.DrawClip("train", 3, 4, &a), y = data.DrawClip("train", 3, 4, &b);
    EXPECT_EQ(x.episode, y.episode);
    EXPECT_EQ(x.start, y.start);
    EXPECT_EQ(x.camera, y.camera);
    EXPECT_GE(x.start, 0);
    EXPECT_LE(x.start + 2 * 4, x.episode->frames - 1) << "the clip runs past its episode";
    cameras.insert(x.camera);
  }
  EXPECT_EQ(2u, cameras.size());
  try {
    data.DrawClipIn(data.episodes("train").front(), 5, 4, &a);  // 17 frames of 12
    FAIL() << "a clip longer than its episode was drawn";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("demo_"));
  }
}

// Tests the refusals: a camera the data lacks (as the probe camera and as a clip camera), a missing file.
TEST_F(VideoDataTest, MissingCamerasAndFilesAreRefused) {
  try {
    VideoData data({*dir_ / "two.h5"}, "robot0_eye_in_hand");
    FAIL() << "a camera the data lacks was taken";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("robot0_eye_in_hand"));
  }
  VideoData data({*dir_ / "two.h5"});
  EXPECT_THROW(data.SetClipCameras({"camera0", "camera7"}), AdaptError);
  EXPECT_THROW(VideoData({*dir_ / "missing.h5"}), AdaptError);
}

}  // namespace
}  // namespace embody::adapt
