// Data-parallel training over LibTorch's c10d (ProcessGroupGloo on CPU): the ranks come from the
// environment torchrun or Slurm sets, rank 0 hosts the rendezvous store, and every rank computes the
// gradient of its share of each global batch; gradients are averaged with one all-reduce per step.
//
// The trainers draw the whole global batch from one shared RNG stream and read only their share, and
// every quantity that spans the batch (the batch-norm statistics of the encoder's projector, SIGReg's
// characteristic functions, stage two's copy-last normalizers) is reduced over all ranks: N ranks
// with a global batch of B compute the same step as one process with batch B (to float rounding).
//
// Includes torch: include it only from adapt/. c10d's headers stay in distributed.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "sim/output_lock.h"

namespace embody::adapt {

/// Where this process sits in a launch.
struct LaunchInfo {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  ///< on this node
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "single process";  ///< "torchrun", "slurm" or "single process"
};

/// Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT) or, without them, Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
/// SLURM_NTASKS_PER_NODE or SLURM_TASKS_PER_NODE, SLURM_JOB_NODELIST, SLURM_JOB_ID; MASTER_ADDR and
/// MASTER_PORT still win when set). Neither: one process. A Slurm step of one task is one process.
/// @throws AdaptError naming the variable that is malformed or inconsistent.
LaunchInfo ReadLaunchInfo(const std::function<const char*(const char*)>& getenv = [](const char* n) { return std::getenv(n); });

/// The first host of a Slurm node list: "vm" -> "vm", "gpu[03-05,9],cpu1" -> "gpu03".
std::string FirstHostOfNodeList(const std::string& nodelist);

/// Threads a rank should use: `requested` when > 0, else the node's cores shared by its ranks.
int ThreadsPerRank(int requested, const LaunchInfo& launch);

/// One process's membership in a data-parallel group. Every collective blocks until all ranks call it.
class DataParallel {
 public:
  /// Joins the group of `launch` (world_size > 1): rank 0 serves the store at master_addr:master_port.
  /// @throws AdaptError when this LibTorch has no Gloo, or the rendezvous fails within `timeout`.
  static std::unique_ptr<DataParallel> Join(const LaunchInfo& launch, std::chrono::seconds timeout = std::chrono::seconds(1800));
  ~DataParallel();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_root() const { return rank_ == 0; }

  /// Sums each tensor over the ranks, in place (one all-reduce of their concatenation).
  void AllReduceSum(const std::vector<torch::Tensor>& tensors) const;
  /// The average over the ranks of a (detached) tensor.
  torch::Tensor Mean(const torch::Tensor& local) const;
  /// Averages the gradients of `parameters` over the ranks (those without a gradient are skipped,
  /// alike on every rank).
  void AverageGradients(const std::vector<torch::Tensor>& parameters) const;
  /// Copies rank 0's values into every rank's tensors.
  void Broadcast(const std::vector<torch::Tensor>& tensors) const;
  void Barrier() const;
  /// This rank's items [begin, end) of a global batch of `n` (the ranks' shares are equal).
  /// @throws AdaptError when `n` is not a multiple of the world size.
  std::pair<int, int> Share(int n) const;

 private:
  struct Impl;
  DataParallel(std::unique_ptr<Impl> impl, int rank, int world_size);
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_size_ = 1;
};

/// The share of a global batch of `n` this process takes: all of it without a group.
inline std::pair<int, int> ShareOf(const DataParallel* group, int n) { return group ? group->Share(n) : std::pair<int, int>{0, n}; }

/// Batch normalization of (N, C) over the global batch of every rank (what one process would compute
/// on the whole batch), with `bn`'s affine parameters, and its running statistics updated in training.
/// Gradients flow to all ranks' inputs through the reduced statistics.
torch::Tensor SyncBatchNorm(const torch::Tensor& x, torch::nn::BatchNorm1dImpl& bn, const DataParallel& group);

/// The one-writer lock of `output` (sim/output_lock.h) for `program`, taken by the rank that writes
/// (rank 0; without a group, this process). With a group every rank calls it, and the others learn
/// when rank 0 was refused. @throws AdaptError naming the live holder ("... is being written by pid N ...").
std::optional<sim::OutputLock> LockOutputOnRoot(const std::filesystem::path& output, const std::string& program, const DataParallel* group);

}  // namespace embody::adapt
