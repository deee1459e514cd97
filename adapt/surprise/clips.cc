#include "adapt/surprise/clips.h"

namespace embody::adapt {
namespace {

// The keys, named once (attributes of the episode group, and its 1-D datasets).
constexpr char kViolation[] = "violation";
constexpr char kVariant[] = "variant";
constexpr char kViolationObject[] = "violation_object";
constexpr char kPossible[] = "possible";
constexpr char kPair[] = "pair";
constexpr char kViolationFrame[] = "violation_frame";
constexpr char kFrameSkip[] = "surprise_frame_skip";
constexpr char kModel[] = "surprise_model";
constexpr char kCopyLast[] = "surprise_copy_last";
constexpr char kPixel[] = "surprise_pixel";

}  // namespace

void SetSurpriseClipInfo(const SurpriseClipInfo& info, collect::EpisodeData* episode) {
  episode->extra_attrs[kViolation] = info.violation;
  episode->extra_attrs[kVariant] = info.variant;
  episode->extra_attrs[kPossible] = info.possible ? 1 : 0;
  episode->extra_attrs[kPair] = info.pair;
  episode->extra_attrs[kViolationFrame] = info.violation_frame;
  episode->extra_attrs[kViolationObject] = info.violation_object;
}

void SetSurpriseClipCurves(const SurpriseClipCurves& curves, collect::EpisodeData* episode) {
  episode->extra_attrs[kFrameSkip] = curves.frame_skip;
  episode->extra_series[kModel] = curves.model;
  episode->extra_series[kCopyLast] = curves.copy_last;
  episode->extra_series[kPixel] = curves.pixel;
}

bool IsScoredSurpriseClip(const collect::Dataset& dataset, const std::string& demo) { return dataset.HasDataset(demo, kModel); }

SurpriseClipInfo ReadSurpriseClipInfo(const collect::Dataset& dataset, const std::string& demo) {
  SurpriseClipInfo info;
  info.violation = dataset.StringAttr(demo, kViolation);
  info.variant = dataset.StringAttr(demo, kVariant);
  info.violation_object = dataset.HasAttr(demo, kViolationObject) ? dataset.StringAttr(demo, kViolationObject) : "";
  info.possible = dataset.IntAttr(demo, kPossible) != 0;
  info.pair = static_cast<int>(dataset.IntAttr(demo, kPair));
  info.violation_frame = static_cast<int>(dataset.IntAttr(demo, kViolationFrame));
  return info;
}

SurpriseClipCurves ReadSurpriseClipCurves(const collect::Dataset& dataset, const std::string& demo) {
  SurpriseClipCurves curves;
  curves.frame_skip = static_cast<int>(dataset.IntAttr(demo, kFrameSkip));
  curves.model = dataset.Read<float>(demo, kModel);
  curves.copy_last = dataset.Read<float>(demo, kCopyLast);
  curves.pixel = dataset.Read<float>(demo, kPixel);
  return curves;
}

}  // namespace embody::adapt
