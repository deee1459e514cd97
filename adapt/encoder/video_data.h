// Lazy access to the video of simcollect datasets for stage one: which (dataset, demo) episodes
// exist in a split, and clips of consecutive frames read on demand (memory does not grow with the
// dataset). No torch here, so other folders can include it cheaply.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "adapt/core/error.h"
#include "collect/dataset.h"

namespace embody::adapt {

struct EpisodeRef {
  int dataset = 0;
  std::string demo;
  std::int64_t frames = 0;
  std::int64_t scene_group = -1;  ///< the `scene_group` attribute (simcollect --layouts-per-scene), -1 without
  /// Its group's episodes act alike (simcollect --group-actions shared: its dataset's episodes replay
  /// their group's first episode's actions), so their frames at one moment differ in the objects.
  bool group_shares_actions = false;
};

/// One or more datasets, opened once, read lazily.
class VideoData {
 public:
  /// @throws AdaptError when a file is missing, not a dataset, a damaged one (every episode is checked;
  /// with `check_frames` its frames are read back too: leave it on unless the caller reads every frame
  /// itself before any output is in place), has no such camera, or sizes differ.
  VideoData(const std::vector<std::filesystem::path>& files, const std::string& camera = "camera0", bool check_frames = true);

  /// Episodes of /mask/<split> ("train" or "valid") across all datasets.
  const std::vector<EpisodeRef>& episodes(const std::string& split) const;
  /// The episodes clips of `split` are drawn from (DrawClip, DrawGroupMate): its own, or the training
  /// episodes when it has none.
  const std::vector<EpisodeRef>& DrawPool(const std::string& split) const;
  int image_size() const { return image_size_; }
  const collect::Dataset& dataset(int i) const { return *datasets_[i]; }
  int num_datasets() const { return static_cast<int>(datasets_.size()); }
  const std::string& camera() const { return camera_; }

  /// Frames [first, first + count) of an episode as (count, H, W, 3) uint8, from `camera` (empty: camera()).
  std::vector<std::uint8_t> Frames(const EpisodeRef& episode, std::int64_t first, std::int64_t count, const std::string& camera = "") const;
  /// @throws AdaptError naming the first dataset without frames from `camera` (of camera()'s size).
  void RequireCamera(const std::string& camera) const;
  /// Where a clip lies: an episode and its first frame.
  struct ClipRef {
    const EpisodeRef* episode = nullptr;
    std::int64_t start = 0;
    int camera = 0;  ///< which of clip_cameras() it is read from
  };
  /// Cameras clips are read from, one drawn per clip (stage one on every view of a simcollect
  /// --cameras N dataset); by default camera() alone, and no draw. @throws AdaptError when a
  /// dataset lacks one (RequireCamera).
  void SetClipCameras(const std::vector<std::string>& cameras);
  const std::vector<std::string>& clip_cameras() const { return clip_cameras_; }
  /// Draws a random clip of `length` frames `stride` apart from `split` without reading it (data-parallel
  /// ranks draw a whole batch alike and read only their share).
  ClipRef DrawClip(const std::string& split, int length, int stride, std::mt19937_64* rng) const;
  /// A random clip of that episode. @throws AdaptError when it is shorter than a clip.
  ClipRef DrawClipIn(const EpisodeRef& episode, int length, int stride, std::mt19937_64* rng) const;
  /// Whether any episode has a scene group (shares its scene with others).
  bool HasSceneGroups() const;
  /// The most episodes of one dataset that share a scene group (simcollect --layouts-per-scene), 1
  /// without groups.
  int SceneGroupSize() const;
  /// A random other episode of `split` (of the training episodes when `split` has none, as DrawClip)
  /// from the same dataset and scene group as `episode` and none of `taken`; nullptr when it has no
  /// group or the pool holds no such mate.
  const EpisodeRef* DrawGroupMate(const std::string& split, const EpisodeRef& episode, std::mt19937_64* rng,
                                  const std::vector<const EpisodeRef*>& taken = {}) const;
  /// The frames of a drawn clip, (length, H, W, 3) uint8.
  std::vector<std::uint8_t> ReadClip(const ClipRef& clip, int length, int stride) const;
  /// DrawClip and ReadClip; clip_start receives its first frame.
  std::vector<std::uint8_t> RandomClip(const std::string& split, int length, int stride, std::mt19937_64* rng, const EpisodeRef** episode = nullptr,
                                       std::int64_t* clip_start = nullptr) const;

 private:
  std::vector<std::unique_ptr<collect::Dataset>> datasets_;
  std::vector<EpisodeRef> train_, valid_;
  std::string camera_;
  std::vector<std::string> clip_cameras_;
  int image_size_ = 0;
};

}  // namespace embody::adapt
