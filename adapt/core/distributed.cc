#include "adapt/core/distributed.h"

#include <thread>

#include "adapt/core/error.h"

#ifdef EMBODY_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // ProcessGroupGloo.hpp declares its class only under this (PyTorch's own build defines it)
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace embody::adapt {
namespace {

int ParseInt(const char* name, const char* value, int min) {
  try {
    size_t used = 0;
    const int v = std::stoi(value, &used);
    if (used == std::string(value).size() && v >= min) return v;
  } catch (const std::exception&) {
  }
  throw AdaptError(std::string(name) + "=" + value + " is not an integer >= " + std::to_string(min));
}

// "2(x3),1" -> 2: the tasks on the first node (Slurm's compressed per-node counts).
int FirstCount(const char* name, const std::string& text) {
  const auto end = text.find_first_of("(,");
  return ParseInt(name, text.substr(0, end).c_str(), 1);
}

}  // namespace

std::string FirstHostOfNodeList(const std::string& nodelist) {
  const auto comma = nodelist.find(','), bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) return nodelist.substr(0, comma);
  // prefix[03-05,9] -> prefix03
  const auto end = nodelist.find_first_of("-,]", bracket + 1);
  if (end == std::string::npos) throw AdaptError("cannot read the Slurm node list \"" + nodelist + "\"");
  return nodelist.substr(0, bracket) + nodelist.substr(bracket + 1, end - bracket - 1);
}

LaunchInfo ReadLaunchInfo(const std::function<const char*(const char*)>& getenv) {
  LaunchInfo info;
  const char* rank = getenv("RANK");
  const char* world = getenv("WORLD_SIZE");
  if ((rank != nullptr) != (world != nullptr)) throw AdaptError("RANK and WORLD_SIZE must be set together (torchrun sets both)");
  if (rank) {
    info.launcher = "torchrun";
    info.world_size = ParseInt("WORLD_SIZE", world, 1);
    info.rank = ParseInt("RANK", rank, 0);
    const char* local = getenv("LOCAL_RANK");
    const char* local_world = getenv("LOCAL_WORLD_SIZE");
    info.local_rank = local ? ParseInt("LOCAL_RANK", local, 0) : info.rank;
    info.local_world_size = local_world ? ParseInt("LOCAL_WORLD_SIZE", local_world, 1) : info.world_size;
  } else if (const char* tasks = getenv("SLURM_STEP_NUM_TASKS")) {
    // Inside an srun step (a batch script itself has SLURM_NTASKS but is one process).
    info.launcher = "slurm";
    info.world_size = ParseInt("SLURM_STEP_NUM_TASKS", tasks, 1);
    const char* procid = getenv("SLURM_PROCID");
    if (!procid) throw AdaptError("SLURM_STEP_NUM_TASKS is set but SLURM_PROCID is not");
    info.rank = ParseInt("SLURM_PROCID", procid, 0);
    const char* local = getenv("SLURM_LOCALID");
    info.local_rank = local ? ParseInt("SLURM_LOCALID", local, 0) : 0;
    const char* per_node = getenv("SLURM_STEP_TASKS_PER_NODE");
    info.local_world_size = per_node ? FirstCount("SLURM_STEP_TASKS_PER_NODE", per_node) : info.world_size;
    const char* nodes = getenv("SLURM_STEP_NODELIST");
    if (!nodes) nodes = getenv("SLURM_JOB_NODELIST");
    if (nodes) info.master_addr = FirstHostOfNodeList(nodes);
    const char* job = getenv("SLURM_JOB_ID");
    if (job) info.master_port = 20000 + ParseInt("SLURM_JOB_ID", job, 0) % 30000;  // distinct per job, the same on every rank
  }
  if (info.rank >= info.world_size) {
    throw AdaptError("rank " + std::to_string(info.rank) + " is not below the world size " + std::to_string(info.world_size));
  }
  if (info.local_rank >= info.local_world_size) info.local_world_size = info.local_rank + 1;
  if (const char* addr = getenv("MASTER_ADDR")) info.master_addr = addr;
  if (const char* port = getenv("MASTER_PORT")) info.master_port = ParseInt("MASTER_PORT", port, 1);
  if (info.master_port > 65535) throw AdaptError("MASTER_PORT " + std::to_string(info.master_port) + " is not a TCP port");
  return info;
}

int ThreadsPerRank(int requested, const LaunchInfo& launch) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, launch.local_world_size));
}

#ifdef EMBODY_HAVE_GLOO
struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};
#else
struct DataParallel::Impl {};
#endif

DataParallel::DataParallel(std::unique_ptr<Impl> impl, int rank, int world_size) : impl_(std::move(impl)), rank_(rank), world_size_(world_size) {}
DataParallel::~DataParallel() = default;

std::unique_ptr<DataParallel> DataParallel::Join(const LaunchInfo& launch, std::chrono::seconds timeout) {
#ifdef EMBODY_HAVE_GLOO
  auto impl = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(launch.master_port);
    options.isServer = launch.rank == 0;
    options.numWorkers = launch.world_size;
    options.waitWorkers = true;
    options.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    // GLOO_SOCKET_IFNAME picks the interface, as in PyTorch; else this host's address.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, launch.rank, launch.world_size, gloo);
  } catch (const std::exception& e) {
    throw AdaptError("rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) + " (" + launch.launcher +
                     ") could not join the group at " + launch.master_addr + ":" + std::to_string(launch.master_port) + ": " +
                     std::string(e.what()).substr(0, 300));
  }
  std::unique_ptr<DataParallel> group(new DataParallel(std::move(impl), launch.rank, launch.world_size));
  return group;
#else
  throw AdaptError("this build has no c10d Gloo (LibTorch without distributed support or no gloo headers): run " + std::to_string(launch.world_size) +
                   " ranks with a LibTorch that has them, or one process");
#endif
}

void DataParallel::AllReduceSum(const std::vector<torch::Tensor>& tensors) const {
#ifdef EMBODY_HAVE_GLOO
  if (tensors.empty()) return;
  // One buffer in the tensors' own type (gradients: float32), float64 when they differ.
  auto type = tensors[0].scalar_type();
  for (const auto& t : tensors) type = t.scalar_type() == type ? type : torch::kFloat64;
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(type));
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  impl_->group->allreduce(buffer)->wait();
  std::int64_t offset = 0;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    t.copy_(buffer[0].slice(0, offset, offset + t.numel()).view(t.sizes()));
    offset += t.numel();
  }
#else
  (void)tensors;
#endif
}

torch::Tensor DataParallel::Mean(const torch::Tensor& local) const {
  auto t = local.detach().clone();
  AllReduceSum({t});
  return t / world_size_;
}

void DataParallel::AverageGradients(const std::vector<torch::Tensor>& parameters) const {
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  }
  AllReduceSum(grads);
  torch::NoGradGuard no_grad;
  for (auto& g : grads) g.div_(world_size_);
}

void DataParallel::Broadcast(const std::vector<torch::Tensor>& tensors) const {
  // A sum in which every rank but 0 contributes zeros.
  std::vector<torch::Tensor> copies;
  for (const auto& t : tensors) copies.push_back(rank_ == 0 ? t.detach().clone() : torch::zeros_like(t));
  AllReduceSum(copies);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(copies[i]);
}

void DataParallel::Barrier() const { AllReduceSum({torch::zeros({1})}); }

std::pair<int, int> DataParallel::Share(int n) const {
  if (n % world_size_ != 0) {
    throw AdaptError("the batch (" + std::to_string(n) + ") must be a multiple of the " + std::to_string(world_size_) +
                     " ranks: each takes an equal share of every global batch");
  }
  const int share = n / world_size_;
  return {rank_ * share, (rank_ + 1) * share};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// y = (x - mean) * invstd * weight + bias with mean and invstd of the global batch; backward reduces
// the two per-channel sums the input gradient needs over every rank.
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& mean, const torch::Tensor& invstd, double count, std::int64_t group) {
    const auto xhat = (x - mean) * invstd;
    ctx->save_for_backward({xhat, invstd, weight});
    ctx->saved_data["count"] = count;
    ctx->saved_data["group"] = group;
    return xhat * weight + bias;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &xhat = saved[0], &invstd = saved[1], &weight = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    const auto* group = reinterpret_cast<const DataParallel*>(ctx->saved_data["group"].toInt());
    const auto& g = grad_outputs[0];
    const auto sum_dy = g.sum(0), sum_dy_xhat = (g * xhat).sum(0);
    auto global_dy = sum_dy.clone(), global_dy_xhat = sum_dy_xhat.clone();
    group->AllReduceSum({global_dy, global_dy_xhat});
    const auto grad_x = weight * invstd * (g - global_dy / count - xhat * global_dy_xhat / count);
    // The affine parameters' gradients stay this rank's part (AverageGradients combines the ranks).
    return {grad_x, sum_dy_xhat, sum_dy, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor SyncBatchNorm(const torch::Tensor& x, torch::nn::BatchNorm1dImpl& bn, const DataParallel& group) {
  auto& options = bn.options;
  if (!bn.is_training()) {
    return torch::batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, false, 0.0, options.eps(), false);
  }
  // Two passes over the global batch: the mean, then the centred second moment.
  auto stats = torch::cat({x.detach().sum(0), torch::full({1}, static_cast<double>(x.size(0)), x.options())});
  group.AllReduceSum({stats});
  const int64_t channels = x.size(1);
  const double count = stats[channels].item<double>();
  const auto mean = stats.slice(0, 0, channels) / count;
  auto centred = (x.detach() - mean).pow(2).sum(0);
  group.AllReduceSum({centred});
  const auto var = centred / count;
  const auto invstd = torch::rsqrt(var + options.eps());
  {
    torch::NoGradGuard no_grad;
    const double momentum = options.momentum().value_or(0.1);
    bn.running_mean.mul_(1 - momentum).add_(mean, momentum);
    bn.running_var.mul_(1 - momentum).add_(var * (count / std::max(1.0, count - 1)), momentum);
    bn.num_batches_tracked.add_(1);
  }
  return SyncBatchNormFunction::apply(x, bn.weight, bn.bias, mean, invstd, count, reinterpret_cast<std::int64_t>(&group));
}

std::optional<sim::OutputLock> LockOutputOnRoot(const std::filesystem::path& output, const std::string& program, const DataParallel* group) {
  std::optional<sim::OutputLock> lock;
  std::string refused;
  if (!group || group->is_root()) {
    try {
      lock.emplace(sim::OutputLock::Acquire(output, program));
    } catch (const std::runtime_error& e) {
      refused = e.what();
    }
  }
  if (group) {  // the other ranks stop too, instead of waiting in the first collective
    auto failed = torch::full({1}, refused.empty() ? 0.0 : 1.0);
    group->AllReduceSum({failed});
    if (failed.item<double>() > 0 && !group->is_root()) throw AdaptError("rank 0 could not take " + output.string() + " (its log says why)");
  }
  if (!refused.empty()) throw AdaptError(refused);
  return lock;
}

}  // namespace embody::adapt
