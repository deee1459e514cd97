#include "collect/slurm.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <regex>
#include <sstream>

#include "robots/embodiment.h"
#include "sim/atomic_file.h"

extern char** environ;

namespace embody::collect {
namespace fs = std::filesystem;
namespace {

// Single-quoted for bash: safe for any path.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void WriteText(const fs::path& path, const std::string& text, bool executable) {
  sim::WriteFileAtomically(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp);
    out << text;
    out.close();
    if (!out) throw CollectError("cannot write " + tmp.string());
    if (executable) fs::permissions(tmp, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  });
}

// Runs a program (PATH lookup) and returns its standard output; stderr passes through.
std::string Run(const std::vector<std::string>& args, int* status) {
  int pipefd[2];
  if (pipe(pipefd) != 0) throw CollectError("cannot create a pipe to run " + args[0]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipefd[1]);
  if (spawned != 0) {
    close(pipefd[0]);
    throw CollectError(args[0] + " not found on PATH (run simcollect slurm on a machine with the Slurm client tools)");
  }
  std::string out;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(pipefd[0], buffer, sizeof(buffer))) > 0) out.append(buffer, static_cast<size_t>(n));
  close(pipefd[0]);
  waitpid(pid, status, 0);
  return out;
}

// sbatch --parsable prints "id" or "id;cluster".
std::string Sbatch(std::vector<std::string> args) {
  args.insert(args.begin(), {"sbatch", "--parsable"});
  int status = 0;
  std::string out = Run(args, &status);
  const std::string id = out.substr(0, out.find_first_of(";\n"));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
    std::string shown;
    for (const auto& a : args) shown += (shown.empty() ? "" : " ") + a;
    throw CollectError("sbatch refused the job (" + shown + "); its message is above");
  }
  return id;
}

// The training job: stage one (unless an encoder is given), then stage two, each an srun step of
// train_tasks data-parallel ranks; absolute paths throughout.
std::string TrainScript(const CollectConfig& config, const SlurmOptions& options, const SlurmJob& job, const std::array<fs::path, 2>& bins) {
  const fs::path models = fs::absolute(options.models).lexically_normal();
  const fs::path encoder = options.encoder.empty() ? models / "encoder.pt" : fs::absolute(options.encoder).lexically_normal();
  const std::string name = robots::RobotName(config.robot);
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Written by simcollect slurm --train: trains on " << job.out.string() << " once the merge job succeeded (afterok).\n"
    << "# Needs one filesystem on every node at these absolute paths; " << job.out.filename().string() << " links into " << job.dir.string()
    << "/ (keep it).\n"
    << "#SBATCH --job-name=embody-train-" << job.out.stem().string() << "\n"
    << "#SBATCH --ntasks=" << options.train_tasks << "\n"
    << "#SBATCH --output=" << (job.dir / "logs" / "train_%j.out").string() << "\n";
  if (options.cpus_per_task > 0) s << "#SBATCH --cpus-per-task=" << options.cpus_per_task << "\n";
  if (!options.mem.empty()) s << "#SBATCH --mem=" << options.mem << "\n";
  if (!options.partition.empty()) s << "#SBATCH --partition=" << options.partition << "\n";
  if (!options.account.empty()) s << "#SBATCH --account=" << options.account << "\n";
  if (!options.time.empty()) s << "#SBATCH --time=" << options.time << "\n";
  for (const auto& extra : options.sbatch) s << "#SBATCH " << extra << "\n";
  s << "set -euo pipefail\n"
    << "mkdir -p " << Quote(models.string()) << "\n";
  if (options.encoder.empty()) {
    s << "# Stage one: the encoder (pretrain's defaults; --pretrain-args adds options).\n"
      << "srun " << Quote(bins[0].string()) << " --data " << Quote(job.out.string()) << " --out " << Quote(encoder.string())
      << (options.pretrain_args.empty() ? "" : " " + options.pretrain_args) << "\n";
  }
  s << "# Stage two: the world model of " << name << " (adapt's defaults; --adapt-args adds options).\n"
    << "srun " << Quote(bins[1].string()) << " --embodiment " << Quote(robots::RobotRecord(config.robot)) << " --data " << Quote(job.out.string())
    << " --encoder " << Quote(encoder.string()) << " --out " << Quote((models / name).string())
    << (options.adapt_args.empty() ? "" : " " + options.adapt_args) << "\n";
  return s.str();
}

}  // namespace

SlurmJob PlanSlurmJob(const CollectConfig& config, int shards) {
  SlurmJob job;
  job.out = fs::absolute(config.OutPath()).lexically_normal();
  job.dir = job.out.parent_path() / (job.out.stem().string() + ".slurm");
  job.options = job.dir / "collect.json";
  job.collect_script = job.dir / "collect.sbatch";
  job.merge_script = job.dir / "merge.sbatch";
  job.jobs = job.dir / "jobs.json";
  job.submit_script = job.dir / "submit.sh";
  for (int i = 0; i < shards; ++i) job.shards.push_back(job.dir / ("shard" + std::to_string(i) + "of" + std::to_string(shards) + ".h5"));
  return job;
}

namespace {

// The options a Slurm collection refuses, each named with its fix.
void CheckSlurmOptions(const CollectConfig& config, const SlurmOptions& options) {
  if (options.shards < 1 || options.shards > 100000) throw CollectError("--shards must be in 1..100000");
  if (config.shard_count > 1) throw CollectError("simcollect slurm shards the collection itself: drop --shard");
  if (config.resume || config.overwrite) {
    throw CollectError("simcollect slurm: the array tasks always --resume; to start over, delete the job folder (or pass --overwrite-job)");
  }
  if (options.shards > config.episodes) {
    throw CollectError("--shards " + std::to_string(options.shards) + " is more than the " + std::to_string(config.episodes) + " episodes");
  }
  config.Validate();
}

// --train's programs (pretrain, adapt: beside simcollect) and its --encoder, which must be there.
std::array<fs::path, 2> TrainBins(const SlurmOptions& options) {
  if (options.train_tasks < 1) throw CollectError("--train-tasks must be >= 1");
  std::error_code ec;
  const fs::path bin_dir = fs::absolute(options.simcollect).parent_path();
  const std::array<fs::path, 2> train_bins = {bin_dir / "pretrain", bin_dir / "adapt"};
  for (const auto& b : train_bins) {
    if (!fs::exists(b, ec)) {
      throw CollectError("--train runs pretrain and adapt from beside simcollect, and " + b.string() + " is not there (a build without LibTorch?)");
    }
  }
  if (!options.encoder.empty() && !fs::exists(options.encoder, ec)) {
    throw CollectError("--encoder " + options.encoder.string() + " does not exist (leave it out and the training job pretrains one)");
  }
  return train_bins;
}

// A job folder already there is rewritten only for the same options and the same split (or with
// --overwrite-job): shards of another split hold other episodes under the same numbers.
void CheckExistingJob(const SlurmJob& job, const nlohmann::json& wanted, const SlurmOptions& options) {
  std::error_code ec;
  if (options.overwrite) return;
  if (fs::exists(job.options, ec)) {
    nlohmann::json previous;
    try {
      std::ifstream in(job.options);
      previous = nlohmann::json::parse(in);
    } catch (const std::exception&) {
      throw CollectError(job.options.string() + " is unreadable; pass --overwrite-job to rewrite the job");
    }
    if (previous != wanted) {
      throw CollectError(job.dir.string() + " holds a job with other options (" + job.options.string() +
                         "); rerun with the same options to resubmit it, or pass --overwrite-job");
    }
  }
  if (!fs::is_directory(job.dir, ec)) return;
  static const std::regex kShard(R"(shard\d+of(\d+)\.h5(\.parts)?)");
  for (const auto& entry : fs::directory_iterator(job.dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, kShard) && std::stoi(m[1]) != options.shards) {
      throw CollectError(job.dir.string() + " holds shards of a " + m[1].str() + "-way split (" + name + "); rerun with --shards " + m[1].str() +
                         ", or pass --overwrite-job to start over");
    }
  }
}

// The #SBATCH lines every script of the job has.
void CommonSbatch(const SlurmOptions& options, std::ostringstream& s) {
  if (!options.partition.empty()) s << "#SBATCH --partition=" << options.partition << "\n";
  if (!options.account.empty()) s << "#SBATCH --account=" << options.account << "\n";
  if (!options.time.empty()) s << "#SBATCH --time=" << options.time << "\n";
  for (const auto& extra : options.sbatch) s << "#SBATCH " << extra << "\n";
}

// collect.sbatch: one shard per array task, with the job's options (collect.json) and --resume.
std::string CollectScript(const SlurmJob& job, const SlurmOptions& options, const std::string& bin) {
  const std::string n = std::to_string(options.shards);
  std::ostringstream collect;
  collect << "#!/bin/bash\n"
          << "# Written by simcollect slurm: one shard of " << job.out.filename().string() << " per array task.\n"
          << "# Resubmit shard I alone: simcollect slurm <the same options> --retry I (or sbatch --array=I " << job.collect_script.filename().string()
          << ")\n"
          << "#SBATCH --job-name=simcollect-" << job.out.stem().string() << "\n"
          << "#SBATCH --array=0-" << options.shards - 1 << "\n"
          << "#SBATCH --output=" << (job.dir / "logs" / "collect_%A_%a.out").string() << "\n";
  if (options.cpus_per_task > 0) collect << "#SBATCH --cpus-per-task=" << options.cpus_per_task << "\n";
  if (!options.mem.empty()) collect << "#SBATCH --mem=" << options.mem << "\n";
  CommonSbatch(options, collect);
  collect << "set -euo pipefail\n"
          << ": \"${SLURM_ARRAY_TASK_ID:?run this script with sbatch (an array job)}\"\n"
          // The shard count is fixed here, not SLURM_ARRAY_TASK_COUNT: a resubmitted task runs alone.
          << "exec " << bin << " --config " << Quote(job.options.string()) << " --shard \"${SLURM_ARRAY_TASK_ID}/" << n << "\" --out "
          << Quote((job.dir / "shard").string()) << "\"${SLURM_ARRAY_TASK_ID}of" << n << ".h5\" --workers \"${SLURM_CPUS_PER_TASK:-0}\" --resume\n";
  return collect.str();
}

// merge.sbatch: the shards joined into the output (external links, no copying).
std::string MergeScript(const SlurmJob& job, const SlurmOptions& options, const std::string& bin) {
  std::ostringstream merge;
  merge << "#!/bin/bash\n"
        << "# Written by simcollect slurm: joins the shards into " << job.out.string() << " (external links, no copying).\n"
        << "#SBATCH --job-name=simcollect-merge-" << job.out.stem().string() << "\n"
        << "#SBATCH --output=" << (job.dir / "logs" / "merge_%j.out").string() << "\n";
  CommonSbatch(options, merge);
  merge << "set -euo pipefail\nexec " << bin << " merge " << Quote(job.out.string());
  for (const auto& s : job.shards) merge << " " << Quote(s.string());
  merge << "\n";
  return merge.str();
}

// submit.sh: the jobs by hand, each after the one before succeeded.
std::string SubmitScript(const SlurmJob& job, bool train) {
  std::ostringstream submit;
  submit << "#!/bin/bash\n"
         << "# Written by simcollect slurm: the jobs by hand, each after the one before succeeded (what --submit does).\n"
         << "set -euo pipefail\n"
         << "collect=$(sbatch --parsable " << Quote(job.collect_script.string()) << ")\n"
         << "merge=$(sbatch --parsable --dependency=afterok:\"${collect%%;*}\" " << Quote(job.merge_script.string()) << ")\n";
  if (train) submit << "train=$(sbatch --parsable --dependency=afterok:\"${merge%%;*}\" " << Quote(job.train_script.string()) << ")\n";
  submit << "echo \"collect ${collect%%;*}, merge ${merge%%;*}" << (train ? ", train ${train%%;*}" : "") << "\"\n";
  return submit.str();
}

}  // namespace

SlurmJob WriteSlurmJob(const CollectConfig& config, const SlurmOptions& options) {
  CheckSlurmOptions(config, options);
  // The robot is resolved here, once: a typo would otherwise fail every array task.
  std::string robot = config.robot;
  try {
    robots::FindEmbodiment(robot);
  } catch (const std::exception& e) {
    throw CollectError(std::string("--robot: ") + e.what());
  }
  std::error_code ec;
  if (fs::exists(robot, ec)) robot = fs::absolute(robot).lexically_normal().string();  // the jobs may start elsewhere
  SlurmJob job = PlanSlurmJob(config, options.shards);
  std::array<fs::path, 2> train_bins;  // pretrain, adapt: beside simcollect
  if (options.train) train_bins = TrainBins(options);
  if (fs::exists(job.out, ec)) throw CollectError(job.out.string() + " already exists; the merge job would not replace it (move it away)");
  // The options every task collects with: the data's identity (simcollect --config reads it), each task adding its --shard.
  nlohmann::json wanted = config.Identity();
  wanted.erase("shard");
  wanted["robot"] = robot;
  CheckExistingJob(job, wanted, options);
  if (options.overwrite) fs::remove_all(job.dir, ec);
  fs::create_directories(job.dir / "logs");
  WriteJsonFileAtomically(job.options, wanted);
  const std::string bin = Quote(fs::absolute(options.simcollect).string());
  WriteText(job.collect_script, CollectScript(job, options, bin), true);
  WriteText(job.merge_script, MergeScript(job, options, bin), true);
  if (options.train) {
    job.train_script = job.dir / "train.sbatch";
    WriteText(job.train_script, TrainScript(config, options, job, train_bins), true);
  } else {
    fs::remove(job.dir / "train.sbatch", ec);  // a job rewritten without --train has no training step
  }
  WriteText(job.submit_script, SubmitScript(job, options.train), true);
  return job;
}

std::vector<int> ParseShardList(const std::string& text, int shards) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    int i = -1;
    try {
      i = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || i < 0 || i >= shards) {
      throw CollectError("--retry takes shard numbers 0.." + std::to_string(shards - 1) + " separated by commas, got \"" + text + "\"");
    }
    out.push_back(i);
  }
  if (out.empty()) throw CollectError("--retry needs at least one shard number");
  return out;
}

SlurmSubmission SubmitSlurmJob(const SlurmJob& job, const std::vector<int>& retry) {
  std::error_code ec;
  if (!retry.empty() && fs::exists(job.jobs, ec)) {
    // The previous merge job waits on an array that failed: it can never start. Cancel it.
    try {
      std::ifstream in(job.jobs);
      const auto previous = nlohmann::json::parse(in);
      int status = 0;
      Run({"scancel", "--state=PENDING", previous.at("merge").get<std::string>()}, &status);
      if (previous.contains("train")) Run({"scancel", "--state=PENDING", previous["train"].get<std::string>()}, &status);
    } catch (const std::exception&) {
      // Nothing recorded or nothing to cancel: the new merge job is submitted either way.
    }
  }
  std::vector<std::string> array_args;
  if (!retry.empty()) {
    std::string list;
    for (int i : retry) list += (list.empty() ? "" : ",") + std::to_string(i);
    array_args.push_back("--array=" + list);
  }
  array_args.push_back(job.collect_script.string());
  SlurmSubmission s;
  s.array_job = Sbatch(array_args);
  s.merge_job = Sbatch({"--dependency=afterok:" + s.array_job, job.merge_script.string()});
  if (!job.train_script.empty()) s.train_job = Sbatch({"--dependency=afterok:" + s.merge_job, job.train_script.string()});
  nlohmann::json ids = {{"array", s.array_job}, {"merge", s.merge_job}, {"retry", retry}};
  if (!s.train_job.empty()) ids["train"] = s.train_job;
  WriteJsonFileAtomically(job.jobs, ids);
  return s;
}

}  // namespace embody::collect
