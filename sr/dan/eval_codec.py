"""Codec benchmark (issue 16): the model beside OpenCV bicubic on what a camera sends.

  /usr/bin/python3 -m sr.dan.eval_codec --model sr/models/dan_lite_x4_real.onnx
  /usr/bin/python3 -m sr.dan.eval_codec --model sr/dan/runs/dan_lite_x3_real/final.pth --frames 50 --photos set14

Footage: vtest.avi (opencv-doc; a static camera; never used for training), frames
[--start, --start + --frames), HR = the decoded frame (cropped to a multiple of 2*scale),
LR = INTER_AREA 1/scale, then the LR clip through libx264 (--preset, yuv420p, GOP 25, no B
frames: a camera's sub stream) at each CRF of --crf ("lossless" skips the codec) and decoded.
Photos: Set14 / BSD100 HR images (evaluation sets, never trained on), LR = INTER_AREA
1/scale, each encoded alone (one intra frame) at the same CRFs.
PSNR-Y (BT.601, `scale` border pixels cropped) of the model (tiled as served: 64-pixel
tiles, 8 overlap, overlaps averaged) and of cv2.INTER_CUBIC on the same decoded LR.
Temporal stability (footage): blocks of 8x8 LR pixels whose HR content hardly changes
between consecutive frames (mean |dY| < --static-thresh) are "static"; the figure is the
mean |dY| frame to frame of the output on those blocks, model beside bicubic (lower is
steadier; the HR's own change on them is printed too).
--model takes a training checkpoint (.pth) or a bundled ONNX file (its weights are read
back into PyTorch by sr.dan.onnx2pth; the same network, checked against ONNX Runtime).
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np
import torch

from . import data as D
from .eval import load_set, rgb_to_y, psnr, to_u8, upscale
from .degrade import encode_h264

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def load_any(path):
    if path.endswith(".onnx"):
        from .onnx2pth import onnx_to_model
        return onnx_to_model(path)
    from .checkpoint import load_model
    m, _ = load_model(path)
    m.eval()
    return m


def read_footage(path, start, n, scale):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open footage {path!r} (install opencv-doc)")
    frames = []
    i = 0
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        if i >= start:
            h, w = f.shape[:2]
            m = 2 * scale
            frames.append(cv2.cvtColor(f[:h - h % m, :w - w % m], cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames from {start}")
    return frames


def down(hr, scale):
    h, w = hr.shape[:2]
    return cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_AREA)


def codec(lrs, crf, preset):
    if crf == "lossless":
        return lrs, 0
    args = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", preset, "-g", "25", "-bf", "0",
            "-threads", "1", "-crf", str(crf)]
    out, nbytes = encode_h264(lrs, args)
    return list(out), nbytes


def bicubic(lr, scale):
    h, w = lr.shape[:2]
    return cv2.resize(lr, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def y_psnr(a, b, border):
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    return psnr(ya[border:-border, border:-border], yb[border:-border, border:-border])


def static_blocks(hrs, scale, thresh, block=8):
    """Boolean [T-1, H/bs, W/bs] of HR blocks (block*scale pixels) whose HR Y hardly changes."""
    bs = block * scale
    ys = [rgb_to_y(h) for h in hrs]
    masks = []
    for a, b in zip(ys, ys[1:]):
        d = np.abs(a - b)
        H, W = (d.shape[0] // bs) * bs, (d.shape[1] // bs) * bs
        m = d[:H, :W].reshape(H // bs, bs, W // bs, bs).mean(axis=(1, 3))
        masks.append(m < thresh)
    return np.stack(masks), bs


def block_change(outs, masks, bs):
    ys = [rgb_to_y(o) for o in outs]
    tot, n = 0.0, 0
    for t, (a, b) in enumerate(zip(ys, ys[1:])):
        d = np.abs(a - b)
        H, W = masks.shape[1] * bs, masks.shape[2] * bs
        m = d[:H, :W].reshape(masks.shape[1], bs, masks.shape[2], bs).mean(axis=(1, 3))
        tot += float(m[masks[t]].sum())
        n += int(masks[t].sum())
    return tot / max(n, 1), n


def run(model, scale, crfs, footage=VTEST, start=0, frames=150, photos=("set14",), preset="medium",
        static_thresh=1.0, log=print):
    fn = (lambda t: model(t)[1]) if model is not None else None
    tile = model.tile if model is not None else 64
    rows = []
    if frames > 0:
        hrs = read_footage(footage, start, frames, scale)
        lrs0 = [down(h, scale) for h in hrs]
        masks, bs = static_blocks(hrs, scale, static_thresh)
        hr_change, nblk = block_change(hrs, masks, bs)
        for crf in crfs:
            t0 = time.time()
            lrs, nbytes = codec(lrs0, crf, preset)
            pm, pb, outs_m, outs_b = [], [], [], []
            for lr, hr in zip(lrs, hrs):
                b = bicubic(lr, scale)
                pb.append(y_psnr(b, hr, scale))
                outs_b.append(b)
                if fn is not None:
                    o = to_u8(upscale(fn, lr, scale, tile))
                    pm.append(y_psnr(o, hr, scale))
                    outs_m.append(o)
            r = {"set": f"footage:{os.path.basename(footage)}[{start}:{start + len(hrs)}]", "crf": crf, "scale": scale,
                 "n": len(hrs), "bicubic": float(np.mean(pb)),
                 "kbps_at_25fps": round(nbytes * 8 / 1000 / (len(hrs) / 25.0), 1),
                 "flicker_bicubic": block_change(outs_b, masks, bs)[0], "flicker_hr": hr_change, "static_blocks": nblk}
            if fn is not None:
                r["model"] = float(np.mean(pm))
                r["gain"] = r["model"] - r["bicubic"]
                r["flicker_model"] = block_change(outs_m, masks, bs)[0]
            r["seconds"] = round(time.time() - t0, 1)
            rows.append(r)
            log(fmt(r))
    for name in photos:
        pairs, _ = load_set(f"{name}_x4")  # HR images only; LR made here
        hrs = []
        for _, _, hr in pairs:
            h, w = hr.shape[:2]
            m = 2 * scale
            hrs.append(np.ascontiguousarray(hr[:h - h % m, :w - w % m]))
        for crf in crfs:
            t0 = time.time()
            pm, pb = [], []
            for hr in hrs:
                lr, _ = codec([down(hr, scale)], crf, preset)
                lr = lr[0]
                pb.append(y_psnr(bicubic(lr, scale), hr, scale))
                if fn is not None:
                    pm.append(y_psnr(to_u8(upscale(fn, lr, scale, tile)), hr, scale))
            r = {"set": f"photos:{name}(HR, intra)", "crf": crf, "scale": scale, "n": len(hrs),
                 "bicubic": float(np.mean(pb))}
            if fn is not None:
                r["model"] = float(np.mean(pm))
                r["gain"] = r["model"] - r["bicubic"]
            r["seconds"] = round(time.time() - t0, 1)
            rows.append(r)
            log(fmt(r))
    return rows


def fmt(r):
    s = f"{r['set']} x{r['scale']} crf={r['crf']}: n={r['n']}"
    if "model" in r:
        s += f" model {r['model']:.3f}"
    s += f" bicubic {r['bicubic']:.3f}"
    if "gain" in r:
        s += f" gain {r['gain']:+.3f} dB"
    if "flicker_bicubic" in r:
        s += (f" | static-block change: model {r.get('flicker_model', float('nan')):.3f} bicubic "
              f"{r['flicker_bicubic']:.3f} HR {r['flicker_hr']:.3f} ({r['static_blocks']} blocks)"
              f" | {r['kbps_at_25fps']} kb/s")
    return s + f" ({r['seconds']}s)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help=".pth checkpoint or .onnx file; omit for bicubic only")
    ap.add_argument("--scale", type=int, help="needed without --model")
    ap.add_argument("--crf", default="lossless,18,28,34,36")
    ap.add_argument("--footage", default=VTEST)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=150, help="footage frames (0: none)")
    ap.add_argument("--photos", default="set14,bsd100", help="HR sets encoded as intra frames ('' for none)")
    ap.add_argument("--preset", default="medium", help="libx264 preset")
    ap.add_argument("--static-thresh", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="append rows as JSON lines")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads if a.threads > 0 else os.cpu_count())
    cv2.setNumThreads(1)
    try:
        model = load_any(a.model) if a.model else None
        scale = model.scale if model is not None else a.scale
        if not scale:
            raise ValueError("give --model or --scale")
        if a.scale and a.scale != scale:
            raise ValueError(f"model is x{scale}, --scale {a.scale}")
        crfs = [c if c == "lossless" else int(c) for c in a.crf.split(",")]
        rows = run(model, scale, crfs, a.footage, a.start, a.frames, [p for p in a.photos.split(",") if p],
                   a.preset, a.static_thresh)
        if a.json:
            with open(a.json, "a") as f:
                for r in rows:
                    r["model_path"] = a.model
                    f.write(json.dumps(r) + "\n")
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"eval_codec: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
