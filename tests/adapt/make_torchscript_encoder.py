"""Writes tiny TorchScript encoders the way a Python user would export one (torch.jit.trace).

Usage: make_torchscript_encoder.py OUT_DIR IMAGE_SIZE
  OUT_DIR/good.pt      frames (B,T,3,H,W) -> tokens (B,T,N,D), with an image_size attribute
  OUT_DIR/traced.pt    the same through torch.jit.trace (no image_size attribute)
  OUT_DIR/bad_rank.pt  returns (B,T,D): the wrong rank
"""
import sys

import torch


class TinyEncoder(torch.nn.Module):
    def __init__(self, image_size):
        super().__init__()
        self.image_size = image_size
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8)

    def forward(self, frames):
        b, t = frames.shape[0], frames.shape[1]
        x = self.conv(frames.reshape(b * t, 3, frames.shape[3], frames.shape[4]))
        return x.flatten(2).transpose(1, 2).reshape(b, t, -1, 16)


class BadRank(torch.nn.Module):
    def __init__(self, image_size):
        super().__init__()
        self.image_size = image_size
        self.inner = TinyEncoder(image_size)

    def forward(self, frames):
        return self.inner(frames).mean(2)


def main():
    out, size = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    # torch.jit.script keeps the image_size attribute; torch.jit.trace drops it (then pass
    # --encoder-image-size). Both export the same forward.
    encoder = TinyEncoder(size)
    torch.jit.script(encoder).save(out + "/good.pt")
    torch.jit.trace(encoder, torch.rand(1, 2, 3, size, size)).save(out + "/traced.pt")
    torch.jit.script(BadRank(size)).save(out + "/bad_rank.pt")


if __name__ == "__main__":
    main()
