"""Export a DAN-lite checkpoint to ONNX (opset 17) for danstream's Go engine.

  /usr/bin/python3 -m sr.dan.export sr/dan/runs/dan_lite_x4_pretrain/final.pth sr/models/dan_lite_x4.onnx --name dan-lite-x4
  /usr/bin/python3 -m sr.dan.export --fixture sr/testdata   # tiny model + input/output for the Go test

Input "lr" float32 [N,3,T,T] RGB in [0,1], output "hr" float32 [N,3,sT,sT] (the frequency-
branch image, not clamped), N dynamic. LoRA is merged into the base weights first; the DFT
and inverse DFT are MatMuls with constant cos/sin matrices (no DFT op: runs on every
execution provider). Metadata (danstream.*) is written into metadata_props.
"""
import argparse
import json
import inspect
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from .lora import merge_lora
from .model import DANLite


class _Export(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, lr):
        return self.model(lr)[1]


def export_model(model: nn.Module, path: str, name: str, overlap: int = 8, version: str = "1",
                 extra_meta: dict = None) -> dict:
    import onnx
    merged = merge_lora(model)
    model.eval()
    tile, scale = model.tile, model.scale
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"overlap {overlap} must be in [0, {tile})")
    cfg = model.cfg
    arch = (f"DAN-lite: {cfg['groups']}x{cfg['convs_per_group']} conv3x3 body, {cfg['feat']} ch, "
            f"bicubic-residual pixel-shuffle x{scale}; frequency branch gb_feat={cfg['gb_feat']} "
            f"(matrix DFT {tile}x{tile}, polyphase HR spectrum); LoRA merged: {merged}")
    dummy = torch.rand(1, 3, tile, tile)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about the fixed-size checks
        # The TorchScript exporter on every torch: torch >= 2.5 otherwise defaults to the
        # dynamo one (graph differs, weights in a side .data file the engine does not read).
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(_Export(model), dummy, path, opset_version=17, input_names=["lr"],
                          output_names=["hr"], dynamic_axes={"lr": {0: "N"}, "hr": {0: "N"}},
                          do_constant_folding=True, **legacy)
    m = onnx.load(path)
    ops = {n.op_type for n in m.graph.node}
    for bad in ("DFT", "STFT"):
        if bad in ops:
            raise RuntimeError(f"exported graph has a {bad} node; the matrix DFT path was not used")
    meta = {"danstream.scale": str(scale), "danstream.tile": str(tile), "danstream.overlap": str(overlap),
            "danstream.input_range": "0,1", "danstream.color_order": "RGB", "danstream.name": name,
            "danstream.version": str(version), "danstream.arch": arch}
    meta.update(extra_meta or {})
    # Static output shape except the batch, so loaders can check it without running.
    dims = m.graph.output[0].type.tensor_type.shape.dim
    for d, v in zip(dims[1:], (3, tile * scale, tile * scale)):
        d.Clear()
        d.dim_value = v
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "danstream sr.dan.export"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return meta


def make_fixture(outdir: str, seed: int = 0):
    """Tiny randomly initialised DAN-lite (x2, 16x16 tiles) exported by export_model, plus
    an input batch and PyTorch's output, for the Go ORT-vs-PyTorch equality test."""
    torch.manual_seed(seed)
    model = DANLite(scale=2, tile=16, feat=8, groups=2, convs_per_group=1, gb_feat=4, proj=2, last_kernel=3)
    with torch.no_grad():  # wake the zero-initialised layers so both branches matter
        model.gb_conv_last.weight.normal_(0, 0.05)
        model.conv_up.weight.normal_(0, 0.05)
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y = model(x)[1]
    os.makedirs(outdir, exist_ok=True)
    onnx_path = os.path.join(outdir, "dan_fixture.onnx")
    export_model(model, onnx_path, "dan-fixture-x2", overlap=4, version="0")
    x.numpy().astype("<f4").tofile(os.path.join(outdir, "dan_fixture.in.bin"))
    y.numpy().astype("<f4").tofile(os.path.join(outdir, "dan_fixture.out.bin"))
    with open(os.path.join(outdir, "dan_fixture.json"), "w") as f:
        json.dump({"onnx": "dan_fixture.onnx", "input": "dan_fixture.in.bin", "output": "dan_fixture.out.bin",
                   "input_shape": list(x.shape), "output_shape": list(y.shape), "dtype": "float32 little-endian",
                   "tolerance": 1e-3, "made_by": "/usr/bin/python3 -m sr.dan.export --fixture sr/testdata"}, f, indent=1)
        f.write("\n")
    return onnx_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--name", help="danstream.name, e.g. dan-lite-x4")
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--version", default="1")
    ap.add_argument("--scale", type=int, help="refuse a checkpoint of another scale")
    ap.add_argument("--fixture", metavar="DIR", help="write the tiny test fixture into DIR instead")
    a = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    try:
        if a.fixture:
            print(make_fixture(a.fixture))
            return 0
        if not a.ckpt or not a.out:
            ap.error("need CKPT and OUT (or --fixture DIR)")
        from .checkpoint import load_model
        model, ck = load_model(a.ckpt, expect_scale=a.scale)
        name = a.name or f"dan-lite-x{model.scale}"
        meta = export_model(model, a.out, name, a.overlap, a.version,
                            {"danstream.train_iters": str(ck.get("iter", "")),
                             "danstream.train_mode": str(ck.get("options", {}).get("mode", ""))})
        print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e6:.2f} MB): " + json.dumps(meta))
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
