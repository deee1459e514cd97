#include "adapt/encoder/latent_cache.h"

#include <cstdio>
#include <optional>

#include "adapt/encoder/video_data.h"
#include "collect/dataset.h"
#include "collect/hdf5_util.h"
#include "sim/atomic_file.h"
#include "sim/output_lock.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
namespace h5 = collect::h5;

std::string Fnv(const std::string& text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace

std::string DatasetFingerprint(const fs::path& dataset) {
  try {
    const collect::Dataset ds(dataset);
    std::string text = ds.config().dump();
    for (const auto& demo : ds.demos()) {
      text += "|" + demo + ":" + std::to_string(ds.NumSamples(demo));
      try {
        const auto target = ds.LinkTarget(demo).first;
        text += ":" + std::to_string(fs::file_size(target)) + ":" + std::to_string(fs::last_write_time(target).time_since_epoch().count());
      } catch (const std::exception&) {
        // Not a link (a self-contained file): the top file's own size and time below cover it.
      }
    }
    text += "|" + std::to_string(fs::file_size(dataset));
    return Fnv(text);
  } catch (const collect::DatasetError& e) {
    throw AdaptError(e.what());
  }
}

LatentCacheInfo ReadLatentCacheInfo(const fs::path& cache) {
  try {
    h5::Handle file = h5::OpenFile(cache.string());
    h5::Handle root = h5::OpenGroup(file, "/");
    return {h5::GetStringAttr(root, "encoder_hash"), h5::GetStringAttr(root, "dataset_fingerprint"), h5::GetStringAttr(root, "camera"),
            h5::GetIntAttr(root, "frames")};
  } catch (const collect::DatasetError& e) {
    throw AdaptError(cache.string() + " is not a latent cache: " + e.what());
  }
}

fs::path LatentCachePath(const fs::path& dataset, const std::string& encoder_hash, const std::string& camera) {
  return fs::path(dataset.string() + ".latents") / (encoder_hash + (camera == "camera0" ? "" : "." + camera) + ".h5");
}

namespace {

// The frames of an up-to-date cache at `path`, or -1 (missing, unreadable or stale: *stale says which).
std::int64_t FreshFrames(const fs::path& path, const std::string& fingerprint, const std::string& encoder_hash, const std::string& camera,
                         bool* stale) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return -1;
  try {
    const LatentCacheInfo info = ReadLatentCacheInfo(path);
    if (info.Matches(fingerprint, encoder_hash, camera)) return info.frames;
  } catch (const AdaptError&) {
    // unreadable: rebuilt
  }
  *stale = true;
  return -1;
}

}  // namespace

CacheStatus EnsureLatentCache(FrozenEncoder& encoder, const fs::path& dataset, const std::string& camera, int batch, bool verbose) {
  CacheStatus status;
  status.path = LatentCachePath(dataset, encoder.hash(), camera);
  const std::string fingerprint = DatasetFingerprint(dataset);
  if ((status.frames = FreshFrames(status.path, fingerprint, encoder.hash(), camera, &status.stale)) >= 0) return status;
  // One encoder per cache: a second program that needs the same cache waits for the first, then
  // finds it in place (the cache is renamed into place whole, so it is never read half-written).
  std::optional<sim::OutputLock> lock;
  try {
    lock.emplace(sim::OutputLock::Wait(status.path, "encode", [&](const std::string& holder) {
      std::fprintf(stderr, "encode: waiting for %s to finish encoding %s\n", holder.c_str(), status.path.c_str());
    }));
  } catch (const std::runtime_error& e) {
    throw AdaptError(e.what());
  }
  status.stale = false;
  if ((status.frames = FreshFrames(status.path, fingerprint, encoder.hash(), camera, &status.stale)) >= 0) return status;
  status.frames = 0;
  if (status.stale && verbose) std::fprintf(stderr, "encode: %s is stale (the dataset or options changed); rebuilding\n", status.path.c_str());
  // Every frame is read (and its checksum verified) while encoding, before the cache is renamed into
  // place: the frames need no separate check.
  const VideoData data({dataset}, camera, /*check_frames=*/false);
  if (data.image_size() != encoder.image_size()) {
    throw AdaptError("encoder takes " + std::to_string(encoder.image_size()) + " px frames; " + dataset.string() + " has " +
                     std::to_string(data.image_size()) + " px");
  }
  const collect::Dataset& ds = data.dataset(0);
  const int s = data.image_size();
  sim::WriteFileAtomically(status.path, [&](const fs::path& tmp) {
    h5::Handle file = h5::CreateFile(tmp.string());
    for (const auto& demo : ds.demos()) {
      const EpisodeRef episode{0, demo, ds.NumSamples(demo)};
      std::vector<torch::Tensor> chunks;
      for (std::int64_t first = 0; first < episode.frames; first += batch) {
        const std::int64_t count = std::min<std::int64_t>(batch, episode.frames - first);
        auto frames = data.Frames(episode, first, count);
        const auto x = FramesToInput(torch::from_blob(frames.data(), {count, 1, s, s, 3}, torch::kUInt8).clone());
        chunks.push_back(encoder.Encode(x).squeeze(1).contiguous());
      }
      const auto latents = torch::cat(chunks).contiguous();
      const std::vector<hsize_t> dims(latents.sizes().begin(), latents.sizes().end());
      h5::WriteArray<float>(file, demo + "/latents", dims, latents.data_ptr<float>());
      status.frames += episode.frames;
    }
    h5::Handle root = h5::OpenGroup(file, "/");
    h5::SetAttr(root, "encoder_hash", encoder.hash());
    h5::SetAttr(root, "encoder_kind", encoder.kind());
    h5::SetAttr(root, "dataset_fingerprint", fingerprint);
    h5::SetAttr(root, "dataset", fs::absolute(dataset).string());
    h5::SetAttr(root, "camera", camera);
    h5::SetAttr(root, "frames", status.frames);
  });
  status.built = true;
  return status;
}

torch::Tensor ReadCachedLatents(const fs::path& cache, const std::string& demo) {
  try {
    h5::Handle file = h5::OpenFile(cache.string());
    std::vector<hsize_t> dims;
    auto values = h5::ReadArray<float>(file, demo + "/latents", &dims);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    return torch::from_blob(values.data(), shape, torch::kFloat32).clone();
  } catch (const collect::DatasetError& e) {
    throw AdaptError(cache.string() + ": no latents for " + demo + " (" + e.what() + ")");
  }
}

}  // namespace embody::adapt
