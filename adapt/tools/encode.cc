// encode: writes the latent cache of a frozen encoder for datasets, once; reuses an up-to-date cache
// and rebuilds a stale one.
//   encode --encoder models/encoder.pt --data data/ur5.h5
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>

#include "adapt/core/error.h"
#include "adapt/core/program_options.h"
#include "adapt/core/training.h"
#include "adapt/encoder/latent_cache.h"

int main(int argc, char** argv) {
  using namespace embody::adapt;
  CLI::App app{"encode: cache a frozen encoder's latents for every frame of a dataset"};
  std::string encoder_path = "models/encoder.pt", camera = "camera0";
  std::vector<std::string> data_files;
  int image_size = 0, threads = 0;
  app.add_option("--encoder", encoder_path, "Frozen encoder: ours (pretrain) or TorchScript")->capture_default_str();
  app.add_option("--data", data_files, "Datasets to encode")->required();
  app.add_option("--camera", camera, "Camera whose frames are encoded")->capture_default_str();
  app.add_option("--encoder-image-size", image_size, "Input size of a TorchScript encoder without an image_size attribute");
  app.add_option("--threads", threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  std::string device = "auto";
  app.add_option("--device", device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda")->capture_default_str();
  AddConfigOption(app);
  CLI11_PARSE(app, argc, argv);
  try {
    torch::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    FrozenEncoder encoder = FrozenEncoder::Load(encoder_path, image_size);
    encoder.To(ResolveDevice(device));
    for (const auto& file : data_files) {
      const CacheStatus s = EnsureLatentCache(encoder, file, camera, 64, /*verbose=*/true);
      std::printf("encode: %s -> %s (%lld frames, %s)\n", file.c_str(), s.path.c_str(), static_cast<long long>(s.frames),
                  s.built ? (s.stale ? "rebuilt: the old cache was stale" : "built") : "up to date, reused");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "encode: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
