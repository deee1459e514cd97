#include "adapt/encoder/video_data.h"

#include <algorithm>
#include <map>

#include "robots/embodiment.h"

namespace embody::adapt {

VideoData::VideoData(const std::vector<std::filesystem::path>& files, const std::string& camera, bool check_frames)
    : camera_(camera), clip_cameras_{camera} {
  if (files.empty()) throw AdaptError("no dataset given (--data FILE.h5 ...)");
  for (const auto& file : files) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      // The suggestion runs as written: the file's stem when it names a built-in robot, else franka (or yours).
      const auto builtins = robots::BuiltinEmbodimentNames();
      const std::string stem = file.stem().string();
      const bool builtin = std::find(builtins.begin(), builtins.end(), stem) != builtins.end();
      throw AdaptError("no " + file.string() + " — run: simcollect --robot " + (builtin ? stem : "franka") + " --out " + file.string() +
                       (builtin ? "" : " (or your robot: --robot path/to/robot.json)"));
    }
    try {
      datasets_.push_back(std::make_unique<collect::Dataset>(file));
      datasets_.back()->CheckAll(check_frames);  // a damaged episode fails here, named, before anything is trained or written
    } catch (const collect::DatasetError& e) {
      throw AdaptError(e.what());
    }
    const collect::Dataset& ds = *datasets_.back();
    const int index = static_cast<int>(datasets_.size()) - 1;
    if (ds.demos().empty()) throw AdaptError(file.string() + " holds no episodes");
    std::vector<hsize_t> dims;
    try {
      ds.ReadFrames(ds.demos().front(), camera, 0, 1, &dims);
    } catch (const collect::DatasetError&) {
      throw AdaptError(file.string() + " has no obs/" + camera + "_image frames");
    }
    if (image_size_ == 0) image_size_ = static_cast<int>(dims[1]);
    if (static_cast<int>(dims[1]) != image_size_ || dims[1] != dims[2]) {
      throw AdaptError(file.string() + " has " + std::to_string(dims[1]) + "x" + std::to_string(dims[2]) + " images; the other datasets have " +
                       std::to_string(image_size_) + " px");
    }
    // simcollect --group-actions shared marks every episode that replays another's actions.
    const auto& demos = ds.demos();
    const bool shared = std::any_of(demos.begin(), demos.end(), [&](const std::string& demo) { return ds.HasAttr(demo, "actions_of"); });
    for (const std::string split : {"train", "valid"}) {
      for (const auto& demo : ds.Mask(split)) {
        const std::int64_t group = ds.HasAttr(demo, "scene_group") ? ds.IntAttr(demo, "scene_group") : -1;
        (split == "train" ? train_ : valid_).push_back({index, demo, ds.NumSamples(demo), group, shared && group >= 0});
      }
    }
  }
  if (train_.empty()) throw AdaptError("the datasets have no training episodes (/mask/train is empty)");
}

const std::vector<EpisodeRef>& VideoData::episodes(const std::string& split) const { return split == "valid" ? valid_ : train_; }

std::vector<std::uint8_t> VideoData::Frames(const EpisodeRef& episode, std::int64_t first, std::int64_t count, const std::string& camera) const {
  return datasets_[episode.dataset]->ReadFrames(episode.demo, camera.empty() ? camera_ : camera, first, count);
}

void VideoData::RequireCamera(const std::string& camera) const {
  for (const auto& ds : datasets_) {
    std::vector<hsize_t> dims;
    for (const auto& demo : ds->demos()) {  // each episode: a dataset can link episode files written apart
      try {
        ds->ReadFrames(demo, camera, 0, 1, &dims);
      } catch (const collect::DatasetError&) {
        throw AdaptError(ds->path().string() + " has no obs/" + camera + "_image frames in " + demo + " (collect with --cameras 2 or more)");
      }
      if (static_cast<int>(dims[1]) != image_size_) {
        throw AdaptError(ds->path().string() + ": " + camera + " has " + std::to_string(dims[1]) + " px frames, " + camera_ + " " +
                         std::to_string(image_size_));
      }
    }
  }
}

const std::vector<EpisodeRef>& VideoData::DrawPool(const std::string& split) const { return episodes(split).empty() ? train_ : episodes(split); }

VideoData::ClipRef VideoData::DrawClip(const std::string& split, int length, int stride, std::mt19937_64* rng) const {
  const auto& pool = DrawPool(split);
  return DrawClipIn(pool[(*rng)() % pool.size()], length, stride, rng);
}

VideoData::ClipRef VideoData::DrawClipIn(const EpisodeRef& episode, int length, int stride, std::mt19937_64* rng) const {
  const std::int64_t span = static_cast<std::int64_t>(length - 1) * stride + 1;
  if (episode.frames < span) {
    throw AdaptError(episode.demo + " has " + std::to_string(episode.frames) + " frames, fewer than a clip of " + std::to_string(span));
  }
  ClipRef clip{&episode, static_cast<std::int64_t>((*rng)() % (episode.frames - span + 1))};
  if (clip_cameras_.size() > 1) clip.camera = static_cast<int>((*rng)() % clip_cameras_.size());
  return clip;
}

void VideoData::SetClipCameras(const std::vector<std::string>& cameras) {
  if (cameras.empty()) throw AdaptError("clips need at least one camera");
  for (const auto& c : cameras) {
    if (c != camera_) RequireCamera(c);
  }
  clip_cameras_ = cameras;
}

bool VideoData::HasSceneGroups() const {
  for (const auto* pool : {&train_, &valid_}) {
    for (const auto& e : *pool) {
      if (e.scene_group >= 0) return true;
    }
  }
  return false;
}

int VideoData::SceneGroupSize() const {
  std::map<std::pair<int, std::int64_t>, int> sizes;
  int most = 1;
  for (const auto* pool : {&train_, &valid_}) {
    for (const auto& e : *pool) {
      if (e.scene_group >= 0) most = std::max(most, ++sizes[{e.dataset, e.scene_group}]);
    }
  }
  return most;
}

const EpisodeRef* VideoData::DrawGroupMate(const std::string& split, const EpisodeRef& episode, std::mt19937_64* rng,
                                           const std::vector<const EpisodeRef*>& taken) const {
  if (episode.scene_group < 0) return nullptr;
  std::vector<const EpisodeRef*> mates;
  for (const auto& e : DrawPool(split)) {
    if (e.dataset == episode.dataset && e.scene_group == episode.scene_group && &e != &episode &&
        std::find(taken.begin(), taken.end(), &e) == taken.end()) {
      mates.push_back(&e);
    }
  }
  return mates.empty() ? nullptr : mates[(*rng)() % mates.size()];
}

std::vector<std::uint8_t> VideoData::ReadClip(const ClipRef& clip, int length, int stride) const {
  // Only the clip's frames: a strided read touches `length` of the span's compressed chunks.
  return datasets_[clip.episode->dataset]->ReadFrames(clip.episode->demo, clip_cameras_.at(clip.camera), clip.start, length, nullptr, stride);
}

std::vector<std::uint8_t> VideoData::RandomClip(const std::string& split, int length, int stride, std::mt19937_64* rng, const EpisodeRef** episode,
                                                std::int64_t* clip_start) const {
  const ClipRef clip = DrawClip(split, length, stride, rng);
  if (episode) *episode = clip.episode;
  if (clip_start) *clip_start = clip.start;
  return ReadClip(clip, length, stride);
}

}  // namespace embody::adapt
