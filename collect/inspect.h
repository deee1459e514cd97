// Whole-dataset operations behind `simcollect info` and `simcollect merge`, as library calls.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace embody::collect {

/// What a dataset holds, as `simcollect info` prints it (episodes, frames, embodiments, options,
/// success per task, the randomization ranges seen). Every episode is checked first.
/// @throws DatasetError naming a damaged episode.
std::string DescribeDataset(const std::filesystem::path& file);

/// Joins shard datasets into `out` (external links to their episode files, nothing copied) and
/// returns the episode count. @throws CollectError when `out` exists without `overwrite`, a shard is
/// not an Embody dataset, shards were collected with other options, or an episode is in two shards;
/// DatasetError for a damaged shard.
std::int64_t MergeShards(const std::filesystem::path& out, const std::vector<std::filesystem::path>& shards, bool overwrite);

}  // namespace embody::collect
