// Collection on a Slurm cluster: one shard per array task, then a merge job that depends on the whole
// array (afterok). `simcollect slurm` writes the two batch scripts next to the output and, with
// --submit, submits them through sbatch; --retry I,J resubmits failed shards alone (each finishes what
// it had written: the array tasks always pass --resume) with a fresh merge job.
//
// Layout for --out data/franka.h5:
//   data/franka.slurm/collect.json      the collection options: the data's identity (simcollect --config reads it)
//   data/franka.slurm/collect.sbatch    the array job: simcollect --shard $SLURM_ARRAY_TASK_ID/N --resume
//   data/franka.slurm/merge.sbatch      simcollect merge data/franka.h5 <shards>
//   data/franka.slurm/train.sbatch      (--train) pretrain + adapt on data/franka.h5 -> <models>/encoder.pt, <models>/franka/
//   data/franka.slurm/submit.sh         the chain by hand: collect -> merge -> train, each afterok on the one before
//   data/franka.slurm/shard<I>of<N>.h5  the shards (with their episode folders)
//   data/franka.slurm/logs/             one log per array task and per merge
//   data/franka.slurm/jobs.json         the job ids of the last submission
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "collect/config.h"

namespace embody::collect {

struct SlurmOptions {
  int shards = 0;                             ///< array tasks (required, >= 1)
  std::string partition, time, mem, account;  ///< passed to #SBATCH when set
  int cpus_per_task = 0;                      ///< 0: Slurm's default; the collection uses what it is given
  std::vector<std::string> sbatch;            ///< extra sbatch options, one #SBATCH line each (e.g. "--qos=long")
  std::filesystem::path simcollect;           ///< the binary the jobs run (absolute)
  bool overwrite = false;                     ///< replace a job folder written with other options
  // The training job (train = true): pretrain and adapt beside `simcollect`, on `train_tasks` ranks.
  bool train = false;
  std::filesystem::path models = "models";  ///< where the encoder and the model folder go (made absolute)
  std::filesystem::path encoder;            ///< an existing encoder: stage two only (no pretrain)
  int train_tasks = 1;                      ///< data-parallel ranks (srun -n; the batch must divide by them)
  std::string pretrain_args, adapt_args;    ///< extra options written verbatim into the training commands
};

struct SlurmJob {
  std::filesystem::path out, dir, options, collect_script, merge_script, jobs, submit_script;
  std::filesystem::path train_script;  ///< empty without --train
  std::vector<std::filesystem::path> shards;
};

/// The job's paths for a collection (no files touched).
SlurmJob PlanSlurmJob(const CollectConfig& config, int shards);

/// Writes the options and both scripts (atomically). Refuses a sharded or --resume/--overwrite
/// collection config (the job shards itself), an existing output dataset, a robot that cannot be
/// found, and a job folder written with other options (unless options.overwrite).
/// @throws CollectError with one clear message.
SlurmJob WriteSlurmJob(const CollectConfig& config, const SlurmOptions& options);

struct SlurmSubmission {
  std::string array_job, merge_job, train_job;  ///< train_job empty without --train
};

/// Submits the array (all shards, or only `retry`), a merge job depending on it (afterok) and the
/// training job depending on the merge (afterok), and records their ids in jobs.json. A retry first
/// cancels the merge and training jobs of the previous submission if still queued (their
/// dependencies can no longer be met). @throws CollectError when sbatch fails.
SlurmSubmission SubmitSlurmJob(const SlurmJob& job, const std::vector<int>& retry = {});

/// "2,5" -> {2, 5}, each checked against the shard count. @throws CollectError.
std::vector<int> ParseShardList(const std::string& text, int shards);

}  // namespace embody::collect
