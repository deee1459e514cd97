// A collection run: N worker threads (each with its own model, data and EGL renderer) run episodes
// and hand them through a bounded queue to one writer, so memory stays flat whatever the episode
// count. Handles --resume (skips finished episodes, checks the options match) and --overwrite.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "collect/config.h"
#include "robots/embodiment.h"
#include "sim/output_lock.h"

namespace embody::collect {

struct CollectSummary {
  std::int64_t episodes_written = 0;  ///< this run
  std::int64_t episodes_total = 0;    ///< in the dataset now
  std::int64_t frames_written = 0;    ///< control steps written this run (frames per camera)
  std::int64_t redraws = 0;           ///< unstable attempts discarded and redrawn
  double seconds = 0;
  double writer_busy_seconds = 0;                              ///< time the writer spent writing episode and top files
  std::map<std::string, std::pair<int, int>> success_by_task;  ///< task -> (successes, episodes) this run
};

/// Options for how a run reports progress.
struct ProgressOptions {
  bool enabled = true;
  double line_interval_s = 5.0;  ///< periodic lines when stderr is not a terminal
};

/// Runs the collection described by `config`. @throws CollectError for bad input or an existing
/// dataset made with other options; DatasetError when writing fails.
CollectSummary Collect(const CollectConfig& config, const ProgressOptions& progress = {});

/// Takes the one-writer lock of an output for `program` (see sim/output_lock.h), held while the
/// result lives. @throws CollectError naming the live holder ("... is being written by pid N ...").
sim::OutputLock LockOutput(const std::filesystem::path& out, const std::string& program);

/// The env_args JSON (robomimic) of a run.
nlohmann::json EnvArgs(const CollectConfig& config);
/// The per-dataset metadata of an embodiment (embodiment, action space, joint names, state layout,
/// extrinsics convention): the top file's embody_meta and attributes of every episode group.
nlohmann::json DatasetMeta(const robots::Embodiment& embodiment);

}  // namespace embody::collect
