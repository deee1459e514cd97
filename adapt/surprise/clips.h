// The surprise clips' format, in one place: a `surprise --clips` dataset is a collection-layout
// dataset whose episode 2i is pair i's possible clip and 2i+1 its impossible one; each clip carries
// what it shows (attributes) and, once scored, the surprise curves (1-D datasets, one value per
// model step). RunSurprise writes them through these functions; the viewer reads them with
// ReadSurpriseClip. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "collect/dataset.h"
#include "collect/episode_data.h"

namespace embody::adapt {

/// One clip's record.
struct SurpriseClipInfo {
  std::string violation;         ///< the violation type (continuity, gravity, permanence, solidity)
  std::string variant;           ///< how it was staged
  std::string violation_object;  ///< the object the violation acts on
  bool possible = false;         ///< the pair's possible clip (false: the impossible one)
  int pair = 0;                  ///< the pair's index
  int violation_frame = -1;      ///< the first frame that differs between the pair's clips
};

/// The surprise curves of a scored clip.
struct SurpriseClipCurves {
  int frame_skip = 1;                          ///< control steps per model step (value i at frame (i + 1) * frame_skip)
  std::vector<float> model, copy_last, pixel;  ///< one value per model step
};

/// Sets `clip`'s record on an episode before it is written (WriteEpisodeFile stores extra_attrs).
void SetSurpriseClipInfo(const SurpriseClipInfo& info, collect::EpisodeData* episode);
/// Sets the scored curves on an episode before it is written (extra_attrs and extra_series).
void SetSurpriseClipCurves(const SurpriseClipCurves& curves, collect::EpisodeData* episode);

/// Whether `demo` is a scored surprise clip (it has the curves).
bool IsScoredSurpriseClip(const collect::Dataset& dataset, const std::string& demo);
/// A scored clip's record and curves. @throws collect::DatasetError when `demo` is not one.
SurpriseClipInfo ReadSurpriseClipInfo(const collect::Dataset& dataset, const std::string& demo);
SurpriseClipCurves ReadSurpriseClipCurves(const collect::Dataset& dataset, const std::string& demo);

}  // namespace embody::adapt
