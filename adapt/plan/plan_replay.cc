#include "adapt/plan/plan_replay.h"

#include <algorithm>

#include "adapt/core/error.h"
#include "collect/hdf5_util.h"
#include "sim/atomic_file.h"

namespace embody::adapt {
namespace h5 = collect::h5;
namespace {

hsize_t U(int v) { return static_cast<hsize_t>(v); }

}  // namespace

void WritePlanReplayFile(const std::filesystem::path& path, const PlanReplayFile& r) {
  const int s = r.image_size;
  const size_t frame = static_cast<size_t>(s) * s * 3;
  for (const auto& e : r.episodes) {
    const bool ok =
        e.goal.size() == frame && e.frames.size() == frame * (e.steps + 1) && e.energy.size() == static_cast<size_t>(e.steps) &&
        e.distance_cm.size() == static_cast<size_t>(e.steps + 1) && (e.imagined.empty() || e.imagined.size() == frame * e.steps * r.horizon) &&
        (e.targets.empty() || e.targets.size() == frame * e.steps) && (e.model_error.empty() || e.model_error.size() == static_cast<size_t>(e.steps));
    if (!ok) throw AdaptError("plan replay of episode " + std::to_string(e.episode) + " has inconsistent sizes");
  }
  sim::WriteFileAtomically(path, [&](const std::filesystem::path& tmp) {
    h5::Handle file = h5::CreateFile(tmp.string());
    h5::SetAttr(file, "embodiment", r.embodiment);
    h5::SetAttr(file, "task", r.task);
    h5::SetAttr(file, "model", r.model);
    h5::SetAttr(file, "frame_skip", static_cast<std::int64_t>(r.frame_skip));
    h5::SetAttr(file, "horizon", static_cast<std::int64_t>(r.horizon));
    h5::SetAttr(file, "image_size", static_cast<std::int64_t>(s));
    h5::SetAttr(file, "success_cm", r.success_cm);
    for (const auto& e : r.episodes) {
      h5::Handle g = h5::CreateGroup(file, "episode_" + std::to_string(e.episode));
      h5::SetAttr(g, "episode", static_cast<std::int64_t>(e.episode));
      h5::SetAttr(g, "success", static_cast<std::int64_t>(e.success));
      h5::SetAttr(g, "steps", static_cast<std::int64_t>(e.steps));
      h5::WriteArray<std::uint8_t>(g, "goal", {U(s), U(s), 3}, e.goal.data());
      h5::WriteArray<std::uint8_t>(g, "frames", {U(e.steps + 1), U(s), U(s), 3}, e.frames.data());
      if (!e.imagined.empty() && e.steps > 0) {
        h5::WriteArray<std::uint8_t>(g, "imagined", {U(e.steps), U(r.horizon), U(s), U(s), 3}, e.imagined.data());
      }
      if (!e.targets.empty() && e.steps > 0) h5::WriteArray<std::uint8_t>(g, "targets", {U(e.steps), U(s), U(s), 3}, e.targets.data());
      if (e.steps > 0) h5::WriteArray<double>(g, "energy", {U(e.steps)}, e.energy.data());
      h5::WriteArray<double>(g, "distance_cm", {U(e.steps + 1)}, e.distance_cm.data());
      if (!e.model_error.empty()) h5::WriteArray<double>(g, "model_error", {U(e.steps)}, e.model_error.data());
      if (!e.model_error_frozen.empty()) {
        h5::WriteArray<double>(g, "model_error_frozen", {U(e.model_error_frozen.size())}, e.model_error_frozen.data());
      }
    }
  });
}

PlanReplayFile ReadPlanReplayFile(const std::filesystem::path& path) {
  PlanReplayFile r;
  try {
    h5::Handle file = h5::OpenFile(path.string());
    if (!h5::HasAttr(file, "horizon") || !h5::HasAttr(file, "image_size")) throw AdaptError("not a plan replay (no horizon/image_size)");
    r.embodiment = h5::GetStringAttr(file, "embodiment");
    r.task = h5::GetStringAttr(file, "task");
    r.model = h5::GetStringAttr(file, "model");
    r.frame_skip = static_cast<int>(h5::GetIntAttr(file, "frame_skip"));
    r.horizon = static_cast<int>(h5::GetIntAttr(file, "horizon"));
    r.image_size = static_cast<int>(h5::GetIntAttr(file, "image_size"));
    r.success_cm = h5::GetDoubleAttr(file, "success_cm");
    const int s = r.image_size;
    if (s < 1 || r.horizon < 1) throw AdaptError("bad image_size or horizon");
    for (const std::string& name : h5::ListNames(file, "/")) {
      h5::Handle g = h5::OpenGroup(file, name);
      PlanReplayEpisode e;
      e.episode = static_cast<int>(h5::GetIntAttr(g, "episode"));
      e.success = h5::GetIntAttr(g, "success") != 0;
      e.steps = static_cast<int>(h5::GetIntAttr(g, "steps"));
      std::vector<hsize_t> dims;
      e.goal = h5::ReadArray<std::uint8_t>(g, "goal", &dims);
      if (dims != std::vector<hsize_t>{U(s), U(s), 3}) throw AdaptError(name + "/goal is not " + std::to_string(s) + "x" + std::to_string(s) + "x3");
      e.frames = h5::ReadArray<std::uint8_t>(g, "frames", &dims);
      if (dims != std::vector<hsize_t>{U(e.steps + 1), U(s), U(s), 3}) throw AdaptError(name + "/frames does not hold steps + 1 frames");
      if (h5::Exists(g, "targets")) {
        e.targets = h5::ReadArray<std::uint8_t>(g, "targets", &dims);
        if (dims != std::vector<hsize_t>{U(e.steps), U(s), U(s), 3}) throw AdaptError(name + "/targets is not (steps, S, S, 3)");
      }
      if (h5::Exists(g, "imagined")) {
        e.imagined = h5::ReadArray<std::uint8_t>(g, "imagined", &dims);
        if (dims != std::vector<hsize_t>{U(e.steps), U(r.horizon), U(s), U(s), 3})
          throw AdaptError(name + "/imagined is not (steps, horizon, S, S, 3)");
      }
      if (e.steps > 0) e.energy = h5::ReadArray<double>(g, "energy", &dims);
      if (e.energy.size() != static_cast<size_t>(e.steps)) throw AdaptError(name + "/energy does not hold one value per step");
      e.distance_cm = h5::ReadArray<double>(g, "distance_cm", &dims);
      if (e.distance_cm.size() != static_cast<size_t>(e.steps + 1)) throw AdaptError(name + "/distance_cm does not hold steps + 1 values");
      if (h5::Exists(g, "model_error")) {
        e.model_error = h5::ReadArray<double>(g, "model_error", &dims);
        if (e.model_error.size() != static_cast<size_t>(e.steps)) throw AdaptError(name + "/model_error does not hold one value per step");
      }
      if (h5::Exists(g, "model_error_frozen")) e.model_error_frozen = h5::ReadArray<double>(g, "model_error_frozen", &dims);
      r.episodes.push_back(std::move(e));
    }
  } catch (const std::exception& e) {
    throw AdaptError(path.string() + ": " + e.what());
  }
  if (r.episodes.empty()) throw AdaptError(path.string() + ": no episodes");
  std::sort(r.episodes.begin(), r.episodes.end(), [](const auto& a, const auto& b) { return a.episode < b.episode; });
  return r;
}

}  // namespace embody::adapt
