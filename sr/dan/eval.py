"""Evaluate DAN checkpoints (or bicubic) the way danstream serves them: fixed LR tiles with
overlap, overlaps averaged. PSNR-Y / SSIM-Y (ITU-R BT.601 Y), `scale` border pixels
cropped, bicubic on the same inputs beside every figure.

  /usr/bin/python3 -m sr.dan.eval --ckpt sr/dan/runs/x/final.pth --sets set14_x4,bsd100_x4
  /usr/bin/python3 -m sr.dan.eval --ckpt ... --sets city100_eval_x2
Sets: set5_x4, set14_x4, bsd100_x4 (synthetic x4), city100_eval_x2 / city100_eval_x4
(City100 iPhoneX EVAL split, LR resized by 1/scale with INTER_AREA), city100_train_x2
(for diagnostics only). Data root: ../shared/data or $DANSTREAM_DATA.
"""
import argparse
import glob
import json
import os
import sys
import time

import cv2
import numpy as np
import torch

from . import data as D

try:
    from PIL import Image
except ImportError:
    Image = None


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """uint8/float RGB in [0,255] -> BT.601 Y in [16,235] (float64), as MATLAB rgb2ycbcr."""
    x = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def ssim(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    w = k @ k.T
    f = lambda x: cv2.filter2D(x, -1, w)[5:-5, 5:-5]
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def metrics(sr_u8, hr_u8, border):
    ys, yh = rgb_to_y(sr_u8), rgb_to_y(hr_u8)
    if border:
        ys, yh = ys[border:-border, border:-border], yh[border:-border, border:-border]
    return psnr(ys, yh), ssim(ys, yh)


def tile_starts(n, tile, overlap):
    if n <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, n - tile, step))
    starts.append(n - tile)
    return sorted(set(starts))


@torch.no_grad()
def upscale(fn, lr_u8: np.ndarray, scale: int, tile: int, overlap: int = 8, batch: int = 16,
            pad_small: bool = True) -> np.ndarray:
    """Tiled super-resolution of a uint8 RGB image with a fixed-tile model fn
    ([N,3,T,T] float -> [N,3,sT,sT]); overlaps are averaged. Returns float RGB [0,1]."""
    h0, w0 = lr_u8.shape[:2]
    img = lr_u8
    if h0 < tile or w0 < tile:
        if not pad_small:
            raise ValueError(f"image {w0}x{h0} is smaller than the model's {tile}x{tile} tile")
        img = np.pad(lr_u8, ((0, max(tile - h0, 0)), (0, max(tile - w0, 0)), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img)).float().permute(2, 0, 1) / 255.0
    out = torch.zeros(3, h * scale, w * scale)
    cnt = torch.zeros(1, h * scale, w * scale)
    pos = [(y, xx) for y in tile_starts(h, tile, overlap) for xx in tile_starts(w, tile, overlap)]
    for i in range(0, len(pos), batch):
        chunk = pos[i:i + batch]
        t = torch.stack([x[:, y:y + tile, xx:xx + tile] for y, xx in chunk])
        o = fn(t)
        for (y, xx), oi in zip(chunk, o):
            out[:, y * scale:(y + tile) * scale, xx * scale:(xx + tile) * scale] += oi
            cnt[:, y * scale:(y + tile) * scale, xx * scale:(xx + tile) * scale] += 1
    out = (out / cnt)[:, :h0 * scale, :w0 * scale]
    return out.permute(1, 2, 0).numpy()


def to_u8(img):
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def bicubic(lr_u8, scale, kind="cv2"):
    h, w = lr_u8.shape[:2]
    if kind == "pil" and Image is not None:
        return np.asarray(Image.fromarray(lr_u8).resize((w * scale, h * scale), Image.BICUBIC))
    return cv2.resize(lr_u8, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def load_set(name, root=None):
    """[(id, lr_u8, hr_u8)], scale for a named evaluation set."""
    root = root or D.data_root()
    if name.startswith("city100_"):
        _, split, sc = name.split("_")
        scale = int(sc[1:])
        if not os.path.isdir(os.path.join(root, "city100_iphonex")):
            raise FileNotFoundError(f"City100 not found under {root}")
        return [(f"{i:03d}",) + D.city100_pair(i, scale, root) for i in D.city100_ids(split)], scale
    d = os.path.join(root, name)
    if not os.path.isdir(d):
        raise FileNotFoundError(f"evaluation set {name!r} not found at {d}")
    scale = int(name.rsplit("_x", 1)[1])
    lrs = sorted(glob.glob(os.path.join(d, "LR", "*")))
    hrs = sorted(glob.glob(os.path.join(d, "HR", "*")))
    if len(lrs) != len(hrs) or not lrs:
        raise ValueError(f"{d}: LR/HR file counts differ or are empty")
    out = []
    for lp, hp in zip(lrs, hrs):
        lr, hr = D.read_rgb(lp), D.read_rgb(hp)
        hr = hr[:lr.shape[0] * scale, :lr.shape[1] * scale]
        out.append((os.path.basename(lp), lr, hr))
    return out, scale


def evaluate(fn, name, tile, overlap=8, root=None, scale_of_model=None, limit=None):
    pairs, scale = load_set(name, root)
    if scale_of_model is not None and scale_of_model != scale:
        raise ValueError(f"model is x{scale_of_model} but set {name} is x{scale}")
    if limit:
        pairs = pairs[:limit]
    res = {"set": name, "n": len(pairs), "scale": scale}
    acc = {"model": [], "bicubic": [], "bicubic_pil": []}
    t0 = time.time()
    for _, lr, hr in pairs:
        if fn is not None:
            acc["model"].append(metrics(to_u8(upscale(fn, lr, scale, tile, overlap)), hr, scale))
        acc["bicubic"].append(metrics(bicubic(lr, scale, "cv2"), hr, scale))
        acc["bicubic_pil"].append(metrics(bicubic(lr, scale, "pil"), hr, scale))
    for k, v in acc.items():
        if v:
            res[k] = {"psnr_y": float(np.mean([p for p, _ in v])), "ssim_y": float(np.mean([s for _, s in v]))}
    res["seconds"] = round(time.time() - t0, 1)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="training checkpoint (.pth); omit for bicubic only")
    ap.add_argument("--sets", default="set14_x4,bsd100_x4")
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--output", choices=["freq", "spatial"], default="freq",
                    help="which output to score (freq is the DAN image)")
    ap.add_argument("--limit", type=int, help="first N images per set (quick checks)")
    ap.add_argument("--json", help="append results as JSON lines to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    try:
        fn, tile, mscale, label = None, None, None, "bicubic"
        if a.ckpt:
            from .checkpoint import load_model
            model, ck = load_model(a.ckpt)
            model.eval()
            tile, mscale = model.tile, model.scale
            idx = 1 if a.output == "freq" else 0
            fn = lambda t: model(t)[idx]
            label = a.ckpt
        results = []
        for s in a.sets.split(","):
            r = evaluate(fn, s.strip(), tile, a.overlap, scale_of_model=mscale, limit=a.limit)
            r["model_path"], r["output"] = label, a.output
            results.append(r)
            m = r.get("model", {})
            print(f"{s}: n={r['n']} model PSNR-Y {m.get('psnr_y', float('nan')):.3f} SSIM-Y {m.get('ssim_y', float('nan')):.4f} | "
                  f"bicubic(cv2) {r['bicubic']['psnr_y']:.3f}/{r['bicubic']['ssim_y']:.4f} "
                  f"bicubic(PIL) {r['bicubic_pil']['psnr_y']:.3f}/{r['bicubic_pil']['ssim_y']:.4f} "
                  f"gain vs cv2 bicubic {m.get('psnr_y', float('nan')) - r['bicubic']['psnr_y']:+.3f} dB ({r['seconds']}s)", flush=True)
        if a.json:
            with open(a.json, "a") as f:
                for r in results:
                    f.write(json.dumps(r) + "\n")
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
