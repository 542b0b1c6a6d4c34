"""Recover a training checkpoint from a bundled DAN-lite ONNX file (its initializers keep the
PyTorch parameter names, prefixed "model."), so a bundled network can be fine-tuned when its
training runs are gone. The recovered network is checked against ONNX Runtime.

  /usr/bin/python3 -m sr.dan.onnx2pth sr/models/dan_lite_x4_fast.onnx sr/dan/runs/init/x4_fast.pth
"""
import os
import sys

import numpy as np
import torch

from .model import DANLite, load_state_strict


def onnx_to_model(path: str) -> DANLite:
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    meta = {p.key: p.value for p in m.metadata_props}
    if "danstream.scale" not in meta:
        raise ValueError(f"{path}: no danstream.scale metadata (not a danstream DAN-lite file)")
    state = {i.name[len("model."):]: torch.from_numpy(numpy_helper.to_array(i).copy())
             for i in m.graph.initializer if i.name.startswith("model.")}
    groups = len({k.split(".")[1] for k in state if k.startswith("body.")})
    convs = len({k.split(".")[2] for k in state if k.startswith("body.0.")})
    feat = state["conv_first.weight"].shape[0]
    gb_feat = state["gb_conv_first.weight"].shape[0]
    proj = state["gb_block.0.conv.weight"].shape[0]
    last_k = state["gb_conv_last.weight"].shape[-1]
    model = DANLite(scale=int(meta["danstream.scale"]), tile=int(meta["danstream.tile"]), feat=feat,
                    groups=groups, convs_per_group=convs, gb_feat=gb_feat, proj=proj, last_kernel=last_k)
    load_state_strict(model, state, source=path)
    model.eval()
    return model


def write_reference(model: DANLite, prefix: str, seed=0):
    """Input batch and PyTorch output as raw float32 files, for the ONNX Runtime check
    (`go run sr/dan/tools/ortspeed.go -model F.onnx -in PREFIX.in.bin -out PREFIX.out.bin`:
    Debian has no Python onnxruntime, the Go engine's ORT library does the comparing)."""
    x = torch.rand(2, 3, model.tile, model.tile, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x)[1].numpy()
    x.numpy().astype("<f4").tofile(prefix + ".in.bin")
    y.astype("<f4").tofile(prefix + ".out.bin")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv
    model = onnx_to_model(src)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    prefix = os.path.splitext(dst)[0]
    write_reference(model, prefix)
    torch.save({"model_cfg": model.cfg, "lora": None, "state": model.state_dict(), "iter": 0,
                "elapsed": 0.0, "options": {"mode": "recovered", "source": src}}, dst)
    print(f"{dst}: {model.cfg}\ncheck: go run sr/dan/tools/ortspeed.go -model {src} -n 2 "
          f"-in {prefix}.in.bin -out {prefix}.out.bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
