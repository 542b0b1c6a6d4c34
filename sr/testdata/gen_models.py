#!/usr/bin/env python3
"""Makes the tiny ONNX models the Go tests of package sr load (run with /usr/bin/python3).

They follow the danstream ONNX contract (input "lr" [N,3,T,T] RGB 0..1, output "hr"
[N,3,T*s,T*s], danstream.* metadata) but are a few KB, so tests need no trained model:
  conv_x2.onnx          3x3 convs + pixel shuffle + nearest residual, no global ops (tile 32, overlap 8)
  conv_x2_dynamic.onnx  the same weights with free H,W: the whole-image reference for seam tests
  conv_x2_t64.onnx      the same at tile 64, overlap 8 (the DAN geometry), for cache benchmarks
  nearest_x4.onnx       nearest-neighbour x4 (tile 16, overlap 4): tiled output must equal a plain resize
  conv_x3.onnx, conv_x3_dynamic.onnx, nearest_x3.onnx  the same at scale 3 (the 1080p main / 360p sub pairing)
  bad_*.onnx            contract violations the loader must reject with a clear message
  bad_nan_x4.onnx       nearest x4 times NaN: loads, but its output is not finite (refused on warm-up)
Deterministic (fixed seed); rerun: /usr/bin/python3 sr/testdata/gen_models.py
"""
import os

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class ConvX2(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 12, 3, padding=1)
        self.ps = nn.PixelShuffle(2)

    def forward(self, x):
        y = self.ps(self.c2(F.relu(self.c1(x)))) * 0.1
        return y + F.interpolate(x, scale_factor=2, mode="nearest")


class ConvX3(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 27, 3, padding=1)
        self.ps = nn.PixelShuffle(3)

    def forward(self, x):
        y = self.ps(self.c2(F.relu(self.c1(x)))) * 0.1
        return y + F.interpolate(x, scale_factor=3, mode="nearest")


class Nearest(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.s, mode="nearest")


class NaNX4(nn.Module):
    """A diverged model: the right shapes and metadata, NaN everywhere."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.tensor(float("nan")))

    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode="nearest") * self.k


def meta(scale, tile, overlap, name, **over):
    m = {
        "danstream.scale": str(scale),
        "danstream.tile": str(tile),
        "danstream.overlap": str(overlap),
        "danstream.input_range": "0,1",
        "danstream.color_order": "RGB",
        "danstream.name": name,
        "danstream.version": "1",
        "danstream.arch": "test model: " + name,
    }
    for k, v in over.items():
        key = "danstream." + k
        if v is None:
            m.pop(key, None)
        else:
            m[key] = v
    return m


def export(model, tile, path, metadata, dynamic_hw=False, in_name="lr", out_name="hr"):
    x = torch.rand(1, 3, tile, tile)
    axes = {in_name: {0: "N"}, out_name: {0: "N"}}
    if dynamic_hw:
        axes = {in_name: {0: "N", 2: "H", 3: "W"}, out_name: {0: "N", 2: "OH", 3: "OW"}}
    torch.onnx.export(model, x, path, input_names=[in_name], output_names=[out_name],
                      dynamic_axes=axes, opset_version=17)
    m = onnx.load(path)
    del m.metadata_props[:]
    for k, v in (metadata or {}).items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)


def main():
    torch.manual_seed(1)
    conv = ConvX2().eval()
    near = Nearest(4).eval()
    p = lambda n: os.path.join(HERE, n)
    export(conv, 32, p("conv_x2.onnx"), meta(2, 32, 8, "test-conv-x2"))
    export(conv, 32, p("conv_x2_dynamic.onnx"), None, dynamic_hw=True)
    export(near, 16, p("nearest_x4.onnx"), meta(4, 16, 4, "test-nearest-x4"))
    # Same weights at the DAN models' tile geometry (64, overlap 8): for cache benchmarks.
    export(conv, 64, p("conv_x2_t64.onnx"), meta(2, 64, 8, "test-conv-x2-t64"))
    # Contract violations.
    export(conv, 32, p("bad_nometa.onnx"), None)
    export(conv, 32, p("bad_scale.onnx"), meta(4, 32, 8, "bad-scale"))          # says x4, is x2
    export(conv, 32, p("bad_tile.onnx"), meta(2, 64, 8, "bad-tile"))            # says 64, input is 32
    export(conv, 32, p("bad_overlap.onnx"), meta(2, 32, 16, "bad-overlap"))     # overlap >= tile/2
    export(conv, 32, p("bad_range.onnx"), meta(2, 32, 8, "bad-range", input_range="0,255"))
    export(conv, 32, p("bad_names.onnx"), meta(2, 32, 8, "bad-names"), in_name="input", out_name="output")
    # Scale 3 (seeded apart so the files above stay as they were).
    torch.manual_seed(3)
    conv3 = ConvX3().eval()
    export(conv3, 32, p("conv_x3.onnx"), meta(3, 32, 8, "test-conv-x3"))
    export(conv3, 32, p("conv_x3_dynamic.onnx"), None, dynamic_hw=True)
    export(Nearest(3).eval(), 16, p("nearest_x3.onnx"), meta(3, 16, 4, "test-nearest-x3"))
    export_nan()


def export_nan():
    export(NaNX4().eval(), 16, os.path.join(HERE, "bad_nan_x4.onnx"), meta(4, 16, 4, "bad-nan-x4"))


if __name__ == "__main__":
    with torch.no_grad():
        main()
