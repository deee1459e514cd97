// Small pieces every trainer in adapt/ shares: the learning-rate schedule, atomic checkpoint
// writing and a stopwatch. Includes torch: include it only from adapt/ sources.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "adapt/core/error.h"
#include "sim/atomic_file.h"

namespace embody::adapt {

/// `--device`: "cpu", "cuda" (the LOCAL_RANK-th GPU of a data-parallel launch, else the first), or
/// "auto" (cuda when this LibTorch has CUDA and sees a GPU, else cpu).
/// @throws AdaptError for another name, or cuda without CUDA (saying which is missing).
inline torch::Device ResolveDevice(const std::string& name, int local_rank = 0) {
  if (name == "cpu") return torch::kCPU;
  if (name != "cuda" && name != "auto") throw AdaptError("--device must be auto, cpu or cuda, not " + name);
  const bool cuda = torch::cuda::is_available();
  if (!cuda) {
    if (name == "auto") return torch::kCPU;
    throw AdaptError(
        "--device cuda: this LibTorch sees no CUDA device (Debian's libtorch is CPU-only: build against a CUDA LibTorch with "
        "CMAKE_PREFIX_PATH=<its share/cmake>, on a machine with a GPU)");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(count > 0 ? local_rank % count : 0));
}

/// `--precision`: float32 (the default); bf16, float32 weights with the forward passes' matrix
/// products and convolutions in bfloat16 (autocast, as torch.autocast(dtype=torch.bfloat16)); or
/// float64 for numerical checks (the data-parallel equivalence test: Adam turns float32 rounding in
/// near-zero gradients into whole steps). Call it before building any module. Returns whether the
/// forward passes should autocast to bfloat16. @throws AdaptError for another name.
inline bool SetPrecision(const std::string& precision) {
  if (precision == "float64")
    torch::set_default_dtype(caffe2::TypeMeta::Make<double>());
  else if (precision == "float32" || precision == "bf16")
    torch::set_default_dtype(caffe2::TypeMeta::Make<float>());
  else
    throw AdaptError("--precision must be float32, bf16 or float64, not " + precision);
  return precision == "bf16";
}

/// While alive (and `on`), ops on `device` that autocast lowers (matrix products, convolutions,
/// attention's products) run in bfloat16; reductions, norms and losses stay float32. Weights and
/// gradients stay float32. Wrap forward passes only, never backward or the optimizer step.
class AutocastBf16 {
 public:
  AutocastBf16(const torch::Device& device, bool on) : type_(device.type()), on_(on) {
    if (!on_) return;
    previous_ = Enabled();
    SetEnabled(true);
    at::autocast::increment_nesting();
  }
  ~AutocastBf16() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();  // the cast copies of the weights
    SetEnabled(previous_);
  }
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  bool Enabled() const {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::is_autocast_enabled(type_);
#else
    return type_ == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
  }
  void SetEnabled(bool enabled) const {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
    at::autocast::set_autocast_enabled(type_, enabled);
#else
    if (type_ == c10::DeviceType::CUDA) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(enabled);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(enabled);
    }
#endif
  }
  c10::DeviceType type_;
  bool on_, previous_ = false;
};

/// Linear warmup over the first `warmup_fraction` of `steps`, then cosine decay to a tenth of `lr`.
inline double WarmupCosine(double lr, int steps, int step, double warmup_fraction) {
  const int warmup = std::max(1, static_cast<int>(steps * warmup_fraction));
  if (step < warmup) return lr * (step + 1) / warmup;
  const double progress = static_cast<double>(step - warmup) / std::max(1, steps - warmup);
  return lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress))));
}

/// Writes an archive under a temporary name, then renames it: a reader never sees half a file.
inline void SaveArchiveAtomically(torch::serialize::OutputArchive& archive, const std::filesystem::path& path) {
  sim::WriteFileAtomically(path, [&](const std::filesystem::path& tmp) { archive.save_to(tmp.string()); });
}

/// A trainer's checkpoint: its format tag and run options, its modules by name, the optimizer, the
/// step and the data RNG, written atomically.
inline void SaveTrainingCheckpoint(const std::filesystem::path& path, const std::string& format, const nlohmann::json& config,
                                   const std::vector<std::pair<std::string, const torch::nn::Module*>>& modules,
                                   const torch::optim::Optimizer& optimizer, int step, const std::mt19937_64& rng) {
  torch::serialize::OutputArchive archive;
  archive.write("embody_format", c10::IValue(format));
  archive.write("config", c10::IValue(config.dump()));
  archive.write("step", c10::IValue(static_cast<int64_t>(step)));
  std::ostringstream state;
  state << rng;
  archive.write("rng", c10::IValue(state.str()));
  for (const auto& [name, module] : modules) {
    torch::serialize::OutputArchive sub;
    module->save(sub);
    archive.write(name, sub);
  }
  torch::serialize::OutputArchive sub;
  optimizer.save(sub);
  archive.write("optimizer", sub);
  SaveArchiveAtomically(archive, path);
}

/// Reads back what SaveTrainingCheckpoint wrote besides format and options (the caller checks those
/// first): the modules, the optimizer, the step and the RNG.
inline void LoadTrainingState(torch::serialize::InputArchive& archive, const std::vector<std::pair<std::string, torch::nn::Module*>>& modules,
                              torch::optim::Optimizer& optimizer, int* step, std::mt19937_64* rng) {
  torch::serialize::InputArchive sub;
  for (const auto& [name, module] : modules) {
    archive.read(name, sub);
    module->load(sub);
  }
  archive.read("optimizer", sub);
  optimizer.load(sub);
  c10::IValue value;
  archive.read("step", value);
  *step = static_cast<int>(value.toInt());
  archive.read("rng", value);
  std::istringstream(value.toStringRef()) >> *rng;
}

/// --resume continues a run only with the options it was started with (more steps are allowed).
/// @throws AdaptError naming the checkpoint and its options.
inline void RequireSameRunOptions(nlohmann::json saved, nlohmann::json wanted, const std::filesystem::path& checkpoint) {
  const std::string shown = saved.dump();
  saved.erase("steps");  // training longer is what --resume is for
  wanted.erase("steps");
  if (saved != wanted) throw AdaptError(checkpoint.string() + " was trained with other options (" + shown + "); rerun with those to --resume");
}

/// Seconds since `t`.
inline double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace embody::adapt
