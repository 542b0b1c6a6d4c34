"""Times the DAN networks on a GPU in PyTorch (fp32 / fp16), tile-batched as the Go engine runs them.

    python3 -m sr.dan.bench_gpu [--out results.json] [--iters 50]

The ONNX Runtime CUDA/TensorRT build is not available where this is measured, so this is the
GPU figure for the networks themselves: the matrix-DFT form (what the exported ONNX graph runs)
and torch.fft, batched 64x64 LR tiles, and frames of common camera sizes split into tiles with
the models' 8-pixel overlap. It needs only torch; the models are built from sr/dan/options.
"""
import argparse
import json
import math
import os
import re
import time

import torch

from .model import build_model

OPTIONS = os.path.join(os.path.dirname(__file__), "options")


def model_cfg(option_file):
    """The `model: {...}` line of an options file (flow YAML), parsed without PyYAML."""
    text = open(os.path.join(OPTIONS, option_file)).read()
    m = re.search(r"^model:\s*\{(.*)\}\s*$", text, re.M)
    cfg = {}
    for part in m.group(1).split(","):
        k, v = (s.strip() for s in part.split(":", 1))
        cfg[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return cfg


def tiles_for(w, h, tile=64, overlap=8):
    stride = tile - overlap
    nx = max(1, math.ceil((w - overlap) / stride))
    ny = max(1, math.ceil((h - overlap) / stride))
    return nx * ny


def time_fn(fn, iters, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1000.0


def graph_fn(net, x, half):
    """Captures one forward pass in a CUDA graph and returns its replay: what a serving
    engine with fixed batch shapes (TensorRT, ORT's CUDA graphs) runs without per-kernel
    launch cost, which dominates a network this small at live batch sizes."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
        with torch.cuda.stream(s):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            net(x)
    return g.replay


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--skip-swinir", action="store_true")
    ap.add_argument("--graphs", default="1,24,84,256",
                    help="batch sizes timed as CUDA graphs (24 = a 320x180 frame, 84 = 640x360, in 64-px tiles, 8-px overlap)")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "cuda": torch.version.cuda, "results": []}
    print(f"# {info['gpu']}  torch {info['torch']}  CUDA {info['cuda']}", flush=True)

    models = [("dan-lite-x4", model_cfg("x4_pretrain.yml")), ("dan-lite-x2", model_cfg("x2_pretrain.yml"))]
    if not args.skip_swinir:
        models.append(("swinir-dan-x4 (reference, SwinIR-M)", {"arch": "swinir_dan", "scale": 4, "img_size": 64, "tile": 64}))
    batches = [int(b) for b in args.batches.split(",")]
    for name, cfg in models:
        net = build_model(dict(cfg)).to(dev).eval()
        params = sum(p.numel() for p in net.parameters())
        tile = cfg.get("tile", 64)
        for dtype in (torch.float32, torch.float16):
            for matmul in (True, False):
                if hasattr(net, "dft"):
                    for m in net.modules():
                        if hasattr(m, "force_matmul"):
                            m.force_matmul = matmul
                elif not matmul:
                    continue
                for b in batches:
                    if "swinir" in name and b > 64:
                        continue
                    x = torch.rand(b, 3, tile, tile, device=dev)
                    try:
                        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dtype == torch.float16):
                            ms = time_fn(lambda: net(x), args.iters if "swinir" not in name else max(5, args.iters // 5))
                    except Exception as e:  # record and go on: one failing config must not lose the rest
                        print(f"{name} {dtype} b{b}: {e}", flush=True)
                        continue
                    us_px = ms * 1000.0 / (b * tile * tile)
                    r = {"model": name, "params": params, "dtype": str(dtype).replace("torch.", ""),
                         "dft": "matmul (as exported)" if matmul else "torch.fft",
                         "batch": b, "tile": tile, "ms_per_batch": round(ms, 3),
                         "us_per_lr_pixel": round(us_px, 4), "tiles_per_s": round(b / ms * 1000.0, 1)}
                    info["results"].append(r)
                    print(json.dumps(r), flush=True)
    # CUDA-graph replays of the exported (matrix-DFT) form at frame-sized batches.
    for name, cfg in models:
        if "swinir" in name or not args.graphs:
            continue
        net = build_model(dict(cfg)).to(dev).eval()
        for m in net.modules():
            if hasattr(m, "force_matmul"):
                m.force_matmul = True
        tile = cfg.get("tile", 64)
        for half in (False, True):
            for b in [int(v) for v in args.graphs.split(",")]:
                x = torch.rand(b, 3, tile, tile, device=dev)
                try:
                    ms = time_fn(graph_fn(net, x, half), args.iters)
                except Exception as e:
                    print(f"{name} graph b{b}: {e}", flush=True)
                    continue
                r = {"model": name, "dtype": "float16" if half else "float32", "dft": "matmul (as exported)",
                     "cuda_graph": True, "batch": b, "tile": tile, "ms_per_batch": round(ms, 3),
                     "us_per_lr_pixel": round(ms * 1000.0 / (b * tile * tile), 4), "tiles_per_s": round(b / ms * 1000.0, 1)}
                info["results"].append(r)
                print(json.dumps(r), flush=True)
    # Frame rates implied by the best batched throughput, tiles with 8-px overlap.
    frames = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
    summary = []
    for name, _ in models:
        for dtype in ("float32", "float16"):
            rs = [r for r in info["results"] if r["model"] == name and r["dtype"] == dtype and r["dft"].startswith("matmul")
                  and not r.get("cuda_graph")]
            if not rs:
                continue
            best = max(rs, key=lambda r: r["tiles_per_s"])
            row = {"model": name, "dtype": dtype, "best_batch": best["batch"], "tiles_per_s": best["tiles_per_s"]}
            for label, (w, h) in frames.items():
                row[f"fps_{label}_input"] = round(best["tiles_per_s"] / tiles_for(w, h, best["tile"]), 1)
            summary.append(row)
            print("summary", json.dumps(row), flush=True)
    info["summary"] = summary
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
