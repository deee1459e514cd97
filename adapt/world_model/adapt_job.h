// The `adapt` program's work as library calls (the program parses options and calls these): stage
// two end to end for one embodiment, and its throughput bench.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "adapt/core/distributed.h"
#include "adapt/world_model/stage_two.h"

namespace embody::adapt {

/// What `adapt --embodiment E ...` does.
struct AdaptJob {
  std::string embodiment;  ///< the robot's name (a descriptor's declared name)
  std::string robot;       ///< what --embodiment said: a built-in's name or a descriptor path (messages' commands)
  std::string data;        ///< the dataset (data/<embodiment>.h5)
  std::string encoder;     ///< the frozen encoder (ours or TorchScript; adapt/core/defaults.h picks it when not given)
  std::string out;         ///< the model folder (models/<embodiment>)
  std::string init;        ///< a model folder to start from (transfer), or empty
  /// Cameras the model reads (its latents are each camera's in turn); empty: the model's own for
  /// --eval and --init, else camera0.
  std::vector<std::string> cameras;
  int episodes = 0;            ///< first N training episodes (0 = all)
  int encoder_image_size = 0;  ///< a TorchScript encoder's input size when it has no attribute
  AdaptConfig config;          ///< training (config.device: where)
  /// The predictor's shape options the user gave (--context, --frame-skip, --width, --depth) and
  /// their values: a loaded model (--init's, --eval's) that differs refuses them, never drops them.
  std::map<std::string, int> predictor_flags;
  EvalOptions eval;
  bool eval_only = false, resume = false, overwrite = false;
  bool train_decoder = false;
  int decoder_steps = 300;
  /// The program's options as given and defaulted (adapt/core/program_options.h): metrics.json's
  /// "options", which `adapt --config` reads back.
  nlohmann::json options;
};

/// Builds (or reuses) the latent cache, trains unless eval_only (as a data-parallel rank when `group`
/// is given: rank 0 builds the cache and alone evaluates and writes), evaluates on held-out episodes
/// and writes <out>/metrics.json and plots (and decoder.pt with train_decoder); prints the table.
/// @throws AdaptError naming what is missing or mismatched and the command that makes it.
void RunAdaptJob(AdaptJob job, const LaunchInfo& launch, const DataParallel* group);

/// `adapt --bench`: training samples/s and achieved GFLOP/s on a synthetic batch against a
/// matrix-product peak measured in the same run, on config.device. With a dataset and its latent
/// cache (`adapt --bench --data ...`), also the time to read a training window from the files against
/// reading it from the episodes kept in memory. Returns 0.
int BenchStageTwo(AdaptConfig config, int steps, const std::string& data = "", const std::string& cache = "", const std::string& camera = "camera0");

}  // namespace embody::adapt
