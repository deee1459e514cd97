// Tests for adapt/encoder/encoder.cc: the conv encoder's heads and shapes, frames to input, the
// frozen encoder (random inits by seed, size refusals, save and load), configs of older checkpoints,
// file hashes.
#include "adapt/encoder/encoder.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

EncoderConfig Small(const std::string& head) {
  EncoderConfig c;
  c.image_size = 32;
  c.width = 8;
  c.dim = 16;
  c.head = head;
  c.hidden = 32;
  return c;
}

// Tests the heads: a vector is one token of D per frame, a grid (H/8)^2 tokens; every frame is
// encoded on its own (a clip encoded at once equals its frames encoded one by one).
TEST(EncoderTest, HeadsGiveTheirTokensAndFramesAreEncodedAlone) {
  for (const std::string head : {"vector", "grid"}) {
    const EncoderConfig c = Small(head);
    FrozenEncoder encoder = FrozenEncoder::Random(c, 3);
    const auto frames = torch::rand({2, 3, 3, 32, 32});
    const auto z = encoder.Encode(frames);
    EXPECT_EQ((std::vector<int64_t>{2, 3, c.tokens(), 16}), z.sizes().vec()) << head;
    EXPECT_EQ(head == "vector" ? 1 : 16, c.tokens());
    const auto one = encoder.Encode(frames.slice(0, 1, 2).slice(1, 2, 3));
    EXPECT_TRUE(torch::allclose(one[0][0], z[1][2], 1e-5, 1e-6)) << head << ": a frame's latent depends on the other frames";
  }
}

// Tests random inits: the same seed gives the same encoder (and hash), another seed another; a frame
// of the wrong size is refused, naming both sizes.
TEST(EncoderTest, RandomInitsBySeedAndSizeRefusal) {
  const EncoderConfig c = Small("vector");
  FrozenEncoder a = FrozenEncoder::Random(c, 5), b = FrozenEncoder::Random(c, 5), other = FrozenEncoder::Random(c, 6);
  const auto frames = torch::rand({1, 2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(a.Encode(frames), b.Encode(frames)));
  EXPECT_FALSE(torch::allclose(a.Encode(frames), other.Encode(frames)));
  EXPECT_EQ(32, a.image_size());
  try {
    a.Encode(torch::rand({1, 2, 3, 64, 64}));
    FAIL() << "64 px frames were taken by a 32 px encoder";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("32"));
    EXPECT_THAT(e.what(), HasSubstr("64"));
  }
}

// Tests FramesToInput: uint8 (B, T, H, W, 3) -> (B, T, 3, H, W) in [0, 1], channels in place.
TEST(EncoderTest, FramesToInputMovesChannelsAndScales) {
  auto frames = torch::zeros({1, 1, 2, 2, 3}, torch::kUInt8);
  frames[0][0][1][0][2] = 255;  // row 1, column 0, blue
  frames[0][0][0][1][0] = 51;   // row 0, column 1, red
  const auto x = FramesToInput(frames);
  EXPECT_EQ((std::vector<int64_t>{1, 1, 3, 2, 2}), x.sizes().vec());
  EXPECT_FLOAT_EQ(1.0f, x[0][0][2][1][0].item<float>());
  EXPECT_NEAR(0.2f, x[0][0][0][0][1].item<float>(), 1e-6);
  EXPECT_NEAR(1.2f, x.sum().item<float>(), 1e-6);
}

// Tests configs: a round trip keeps every field; a config from before the vector head (no "head",
// "hidden", "keypoints") reads as the grid encoder it was.
TEST(EncoderTest, ConfigRoundTripsAndOldConfigsReadAsGrids) {
  EncoderConfig c = Small("vector");
  c.keypoints = 4;
  const EncoderConfig back = EncoderConfig::FromJson(c.ToJson());
  EXPECT_EQ(c.ToJson(), back.ToJson());
  EXPECT_EQ(4, back.keypoints);
  const EncoderConfig old = EncoderConfig::FromJson({{"image_size", 64}, {"width", 32}, {"dim", 128}});
  EXPECT_EQ("grid", old.head);
  EXPECT_EQ(512, old.hidden);
  EXPECT_EQ(0, old.keypoints);
  EXPECT_EQ(64, old.tokens());
}

// Tests FileHash: the same bytes the same hash, one byte changed another; a missing file is refused.
TEST(EncoderTest, FileHashFollowsTheBytes) {
  const fs::path dir = fs::temp_directory_path() / ("embody_encoder_hash_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "a") << "weights 1";
  std::ofstream(dir / "b") << "weights 1";
  std::ofstream(dir / "c") << "weights 2";
  EXPECT_EQ(FileHash(dir / "a"), FileHash(dir / "b"));
  EXPECT_NE(FileHash(dir / "a"), FileHash(dir / "c"));
  EXPECT_FALSE(FileHash(dir / "a").empty());
  EXPECT_THROW(FileHash(dir / "missing"), AdaptError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace embody::adapt
