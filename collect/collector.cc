#include "collect/collector.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include "collect/dataset.h"
#include "collect/episode.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A bounded multi-producer, single-consumer queue of finished episodes.
class EpisodeQueue {
 public:
  explicit EpisodeQueue(size_t capacity) : capacity_(capacity) {}
  void Push(EpisodeData ep) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_ || closed_; });
    if (closed_) return;
    items_.push_back(std::move(ep));
    not_empty_.notify_one();
  }
  // False once every producer is done and the queue is empty.
  bool Pop(EpisodeData* ep) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty() || producers_done_ || closed_; });
    if (items_.empty()) return false;
    *ep = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void ProducersDone() {
    std::lock_guard<std::mutex> lock(mutex_);
    producers_done_ = true;
    not_empty_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  size_t capacity_;
  std::deque<EpisodeData> items_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  bool producers_done_ = false, closed_ = false;
};

class Progress {
 public:
  Progress(const ProgressOptions& options, std::int64_t todo, int steps)
      : options_(options), todo_(todo), steps_(steps), tty_(isatty(STDERR_FILENO)), start_(Clock::now()), last_(start_) {}
  void Update(std::int64_t done, bool final = false) {
    if (!options_.enabled) return;
    const double elapsed = Since(start_);
    if (!final && Since(last_) < (tty_ ? 0.2 : options_.line_interval_s)) return;
    last_ = Clock::now();
    const double eps = elapsed > 0 ? done / elapsed : 0, fps = eps * steps_;
    const double eta = eps > 0 ? (todo_ - done) / eps : 0;
    if (tty_) {
      const int width = 30, filled = todo_ > 0 ? static_cast<int>(width * done / todo_) : width;
      std::fprintf(stderr, "\r[%s%s] %lld/%lld episodes  %.2f ep/s  %.0f frames/s  ETA %.0fs   ", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), static_cast<long long>(done), static_cast<long long>(todo_), eps, fps, eta);
      if (final) std::fprintf(stderr, "\n");
    } else if (!final || done != last_done_) {
      std::fprintf(stderr, "simcollect: %lld/%lld episodes, %.2f ep/s, %.0f frames/s, ETA %.0fs\n", static_cast<long long>(done),
                   static_cast<long long>(todo_), eps, fps, eta);
    }
    last_done_ = done;
  }

 private:
  ProgressOptions options_;
  std::int64_t todo_;
  int steps_;
  bool tty_;
  Clock::time_point start_, last_;
  std::int64_t last_done_ = -1;
};

nlohmann::json ReadJsonFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw CollectError("cannot read " + path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw CollectError(path.string() + " is not valid JSON: " + e.what());
  }
}

std::string Differences(const nlohmann::json& a, const nlohmann::json& b) {
  std::string out;
  for (const auto& [key, value] : b.items()) {
    if (!a.contains(key) || a[key] != value) {
      out += (out.empty() ? "" : ", ") + key + " (file: " + (a.contains(key) ? a[key].dump() : "none") + ", now: " + value.dump() + ")";
    }
  }
  return out;
}

// Prepares the output: refuses to clobber, clears for --overwrite, lists finished episodes for --resume.
std::map<std::int64_t, EpisodeEntry> PrepareOutput(const CollectConfig& config, const fs::path& out) {
  const fs::path parts = PartsDir(out);
  const fs::path config_file = parts / "config.json";
  std::error_code ec;
  const bool exists = fs::exists(out, ec) || fs::exists(parts, ec);
  std::map<std::int64_t, EpisodeEntry> done;
  if (exists && !config.resume && !config.overwrite) {
    throw CollectError(out.string() + " already exists; pass --resume to finish it or --overwrite to replace it");
  }
  if (exists && config.resume) {
    if (!fs::exists(config_file)) {
      throw CollectError(out.string() + " was not made by simcollect (no " + config_file.string() + "); use --overwrite to replace it");
    }
    nlohmann::json previous = ReadJsonFile(config_file);
    // A descriptor recorded by a relative path (before records were absolute) means the same file from here.
    if (previous.contains("robot") && previous["robot"].is_string()) previous["robot"] = robots::RobotRecord(previous["robot"].get<std::string>());
    const std::string diff = Differences(previous, config.Identity());
    if (!diff.empty()) {
      throw CollectError(out.string() + " was made with other options: " + diff + "; rerun with the same options to --resume, or --overwrite");
    }
    static const std::regex kEpisode(R"(episode_(\d+)\.h5)");
    for (const auto& entry : fs::directory_iterator(parts)) {
      const std::string name = entry.path().filename().string();
      std::smatch match;
      if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
        fs::remove(entry.path(), ec);  // an episode or top file that was being written when killed
      } else if (std::regex_match(name, match, kEpisode)) {
        const std::int64_t index = std::stoll(match[1]);
        try {
          done[index] = {parts.filename().string() + "/" + name, "/" + DemoName(index), ReadEpisodeFileSamples(entry.path(), index)};
        } catch (const DatasetError&) {
          fs::remove(entry.path(), ec);  // unreadable: redo it
        }
      }
    }
    return done;
  }
  if (exists && config.overwrite) {
    fs::remove(out, ec);
    fs::remove_all(parts, ec);
  }
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path(), ec);
  fs::create_directories(parts, ec);
  if (ec || access(parts.c_str(), W_OK) != 0) {
    throw CollectError("cannot write to " + parts.string() + " (" + (ec ? ec.message() : "permission denied") + ")");
  }
  WriteJsonFileAtomically(config_file, config.Identity());
  return done;
}

}  // namespace

sim::OutputLock LockOutput(const fs::path& out, const std::string& program) {
  try {
    return sim::OutputLock::Acquire(out, program);
  } catch (const std::runtime_error& e) {
    throw CollectError(e.what());
  }
}

nlohmann::json EnvArgs(const CollectConfig& config) {
  const robots::Embodiment e = robots::FindEmbodiment(config.robot);
  nlohmann::json cameras = nlohmann::json::array();
  for (int c = 0; c < config.cameras; ++c) cameras.push_back("camera" + std::to_string(c));
  if (config.eye_in_hand) cameras.push_back(keys::kEyeInHand);
  return {{"env_name", "Embody-" + e.name + "-" + config.task},
          {"type", 0},
          {"env_kwargs",
           {{"robot", e.name},
            {"task", config.task},
            {"control_hz", config.control_hz > 0 ? config.control_hz : e.control_hz},
            {"camera_names", cameras},
            {"camera_height", config.image_size},
            {"camera_width", config.image_size},
            {"mjcf", e.mjcf.filename().string()}}}};
}

namespace {

// A run that fails before any episode is finished leaves nothing behind (nothing to resume from).
void DiscardIfEmpty(const fs::path& out, const std::map<std::int64_t, EpisodeEntry>& episodes) {
  if (!episodes.empty()) return;
  std::error_code ec;
  fs::remove(out, ec);
  fs::remove_all(PartsDir(out), ec);
}

}  // namespace

nlohmann::json DatasetMeta(const robots::Embodiment& embodiment) {
  DatasetMetadata m;
  m.embodiment = embodiment.name;
  m.action_names = embodiment.action_names();
  m.position_scale = embodiment.action_scale.position;
  m.rotation_scale = embodiment.action_scale.rotation;
  m.joint_scale = embodiment.action_scale.joint;
  m.joint_names = embodiment.joints;
  return m.ToJson();
}

CollectSummary Collect(const CollectConfig& config, const ProgressOptions& progress_options) {
  config.Validate();
  const auto start = Clock::now();
  // Resolve the embodiment and task first so that bad input fails before anything is written.
  const EpisodeRunner probe(config, /*render=*/false);
  const robots::Embodiment& embodiment = probe.embodiment();
  const fs::path out = config.OutPath();
  // One writer per output: a second run on it (--overwrite and --resume included) is refused here.
  const sim::OutputLock lock = LockOutput(out, "simcollect");
  std::map<std::int64_t, EpisodeEntry> episodes = PrepareOutput(config, out);
  const fs::path parts = PartsDir(out);

  const nlohmann::json meta = DatasetMeta(embodiment);
  const nlohmann::json env_args = EnvArgs(config);

  std::vector<std::int64_t> todo;
  for (std::int64_t i = config.shard_index; i < config.episodes; i += config.shard_count) {
    if (!episodes.count(i)) todo.push_back(i);
  }
  CollectSummary summary;
  const int workers = std::min<std::int64_t>(config.WorkerCount(), std::max<std::int64_t>(1, todo.size()));
  EpisodeQueue queue(2 * workers);
  std::atomic<size_t> next{0};
  std::atomic<std::int64_t> redraws{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers && !todo.empty(); ++w) {
    threads.emplace_back([&] {
      try {
        EpisodeRunner runner(config);
        for (size_t k = next++; k < todo.size(); k = next++) {
          EpisodeData ep = runner.Run(todo[k]);
          redraws += ep.attempts - 1;
          queue.Push(std::move(ep));
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = todo.size();
        queue.Close();
      }
    });
  }
  std::thread closer([&] {
    for (auto& t : threads) t.join();
    queue.ProducersDone();
  });

  Progress progress(progress_options, static_cast<std::int64_t>(todo.size()), config.steps);
  double last_top_write = -1e9, top_write_cost = 0;
  EpisodeData ep;
  try {
    WriteTopFile(out, episodes, env_args, config.Identity(), meta);  // valid from the first moment
    while (queue.Pop(&ep)) {
      const auto write_start = Clock::now();
      WriteEpisodeFile(parts, ep, meta);
      episodes[ep.index] = {parts.filename().string() + "/" + EpisodeFileName(ep.index), "/" + DemoName(ep.index), ep.steps};
      ++summary.episodes_written;
      summary.frames_written += ep.steps;
      auto& [wins, count] = summary.success_by_task[ep.task];
      wins += ep.success ? 1 : 0;
      ++count;
      // Rewrite the top file after every episode while that is cheap; on big datasets at most
      // ~10% of the writer's time goes to it (the rest is picked up by the final rewrite or --resume).
      if (Since(start) - last_top_write >= 10 * top_write_cost) {
        const auto t = Clock::now();
        WriteTopFile(out, episodes, env_args, config.Identity(), meta);
        top_write_cost = Since(t);
        last_top_write = Since(start);
      }
      summary.writer_busy_seconds += Since(write_start);
      progress.Update(summary.episodes_written);
    }
  } catch (...) {
    queue.Close();
    next = todo.size();
    closer.join();
    DiscardIfEmpty(out, episodes);
    throw;
  }
  closer.join();
  if (error) {
    DiscardIfEmpty(out, episodes);
    std::rethrow_exception(error);
  }
  WriteTopFile(out, episodes, env_args, config.Identity(), meta);
  progress.Update(summary.episodes_written, /*final=*/true);
  summary.episodes_total = static_cast<std::int64_t>(episodes.size());
  summary.redraws = redraws;
  summary.seconds = Since(start);
  return summary;
}

}  // namespace embody::collect
