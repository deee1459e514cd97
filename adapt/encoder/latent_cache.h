// The latent cache: a frozen encoder's tokens for every frame of a dataset, computed once and
// stored in HDF5 beside the dataset, keyed by the encoder's hash, so stage two never runs the frozen
// encoder twice on the same frame.
//
//   data/ur5.h5.latents/<encoder hash>[.<camera>].h5   /demo_N/latents (frames, N, D) float32 (camera0's without the suffix)
//                                               attrs: encoder_hash, dataset_fingerprint, camera
//
// A cache whose dataset fingerprint (episode names, lengths, episode file sizes and times, options)
// no longer matches is stale: it is rebuilt, never silently used.
#pragma once

#include <filesystem>
#include <string>

#include "adapt/encoder/encoder.h"

namespace embody::adapt {

/// Fingerprint of a dataset's content as stage two sees it. @throws AdaptError.
std::string DatasetFingerprint(const std::filesystem::path& dataset);

/// Where the cache of `encoder_hash` for `dataset`'s `camera` lives (camera0: <hash>.h5, another:
/// <hash>.<camera>.h5, so that a world model reading several cameras finds each view's cache).
std::filesystem::path LatentCachePath(const std::filesystem::path& dataset, const std::string& encoder_hash, const std::string& camera = "camera0");

/// What a cache was built from: its attributes, read in one place. @throws AdaptError when the file is
/// not a readable latent cache.
struct LatentCacheInfo {
  std::string encoder_hash, dataset_fingerprint, camera;
  std::int64_t frames = 0;
  /// Whether it is the cache of (fingerprint, encoder, camera).
  bool Matches(const std::string& fingerprint, const std::string& encoder, const std::string& cam) const {
    return dataset_fingerprint == fingerprint && encoder_hash == encoder && camera == cam;
  }
};
LatentCacheInfo ReadLatentCacheInfo(const std::filesystem::path& cache);

struct CacheStatus {
  std::filesystem::path path;
  bool built = false;  ///< false: an up-to-date cache was reused
  bool stale = false;  ///< a cache existed but no longer matched the dataset
  std::int64_t frames = 0;
};

/// Returns an up-to-date cache for (encoder, dataset), building it (atomically) when it is missing or
/// stale. `batch` frames are encoded at a time. @throws AdaptError.
CacheStatus EnsureLatentCache(FrozenEncoder& encoder, const std::filesystem::path& dataset, const std::string& camera = "camera0", int batch = 64,
                              bool verbose = false);

/// Latents of one episode from a cache: (frames, N, D). @throws AdaptError.
torch::Tensor ReadCachedLatents(const std::filesystem::path& cache, const std::string& demo);

}  // namespace embody::adapt
