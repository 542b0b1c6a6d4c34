"""Offline realistic LR/HR pairs (issue 16): short clips of "footage" from still photos, made
the way a fixed camera's sub stream is made, then encoded by libx264 and decoded.

  /usr/bin/python3 -m sr.dan.gen_pairs sr/dan/options/x4_real.yml   # writes data.npz

Per clip (seed = data.seed, clip index): a photo (area-weighted) and a window of it scaled
by a random factor (data.rescale) to the HR frame size; a camera motion (static with
data.p_static, else a slow sub-pixel pan and zoom); per frame the HR frame is the warped
window (the target) and the LR frame the degradation of it (sr.dan.degrade.FramePlan: the
same camera for the whole clip, fresh sensor noise per frame). The LR clip is then encoded
by libx264 (data.degradation.h264: CRF or bit rate, P frames, GOP 25) with probability
h264.p, else left as is. Kept: the last frame (a P frame) and, with data.p_keep_first, the
first (the I frame), as aligned uint8 pairs in <out>/data.npz (lr [N,L,L,3], hr
[N,sL,sL,3]) with a JSON line per clip in <out>/clips.jsonl (its photo and draws).

Photos: sr.dan.data.photo_paths() (opencv-doc images, Plasma wallpapers), the raster
gnome-backgrounds (webp, scaled to <= 2048 px), and City100 iPhoneX HR of the TRAIN split.
Never vtest.avi (the held-out footage) nor any evaluation set.
"""
import argparse
import glob
import json
import math
import os
import random
import sys
import time

import cv2
import numpy as np

from . import data as D
from .degrade import FramePlan, encode_h264, h264_args


def training_photos(include_city100=True, include_gnome=True):
    paths = list(D.photo_paths())
    if include_gnome:
        paths += sorted(p for p in glob.glob("/usr/share/backgrounds/gnome/*.webp"))
    imgs = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < 400:
            continue  # svg / tiny logos
        if max(img.shape[:2]) > 2600:
            f = 2048 / max(img.shape[:2])
            img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        imgs.append((p, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    if include_city100:
        root = os.path.join(D.data_root(), "city100_iphonex", "HR")
        if os.path.isdir(root):
            for i in D.city100_ids("train"):  # TRAIN split only
                p = os.path.join(root, f"{i:03d}H.PNG")
                imgs.append((p, D.read_rgb(p)))
    if not imgs:
        raise RuntimeError("no training photos (install opencv-doc, plasma-workspace-wallpapers, gnome-backgrounds)")
    for p, _ in imgs:
        if "vtest" in os.path.basename(p) or "eval" in p.lower():
            raise RuntimeError(f"held-out file {p} among the training photos")
    return imgs


def make_clip(img, scale, lr_size, frames, dopt, copt, rng):
    """(LR frames after the codec, HR frames, record of the draws)."""
    hs = lr_size * scale
    f = rng.uniform(*copt.get("rescale", [0.4, 1.0]))
    static = rng.random() < copt.get("p_static", 0.5)
    # motion in HR pixels per frame and zoom per frame
    speed = 0.0 if static else rng.uniform(0.2, 2.0) * scale / 4
    ang = rng.uniform(0, 2 * math.pi)
    zoom = 1.0 if static else 1.0 + rng.uniform(-0.004, 0.004)
    margin = int(abs(speed) * frames + hs * abs(zoom ** frames - 1) + 8)
    win = int(math.ceil((hs + 2 * margin) / f))
    if win > min(img.shape[:2]):
        f = (hs + 2 * margin) / min(img.shape[:2]) + 1e-3
        win = min(img.shape[:2])
    y = rng.randrange(0, img.shape[0] - win + 1)
    x = rng.randrange(0, img.shape[1] - win + 1)
    side = hs + 2 * margin
    scene = cv2.resize(np.ascontiguousarray(img[y:y + win, x:x + win]), (side, side), interpolation=cv2.INTER_AREA)
    plan = FramePlan(dopt, scale, rng)
    hr, lr = [], []
    c = side / 2.0
    for t in range(frames):
        z = zoom ** t
        dx, dy = speed * t * math.cos(ang), speed * t * math.sin(ang)
        # HR pixel (u, v) of frame t samples the scene at c + (u - hs/2) / z + d
        m = np.array([[z, 0, hs / 2 - z * (c + dx)], [0, z, hs / 2 - z * (c + dy)]], np.float64)
        fr = scene[margin:margin + hs, margin:margin + hs] if static else \
            cv2.warpAffine(scene, m, (hs, hs), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        hr.append(np.ascontiguousarray(fr))
        lr.append(plan.apply(fr, rng))
    rec = {"rescale": round(f, 3), "static": static, "second_order": plan.second,
           "steps": [{k: v for k, v in s.items() if k != "opt"} for s in plan.steps]}
    h = dopt.get("h264", {})
    if rng.random() < h.get("p", 0.0):
        args, rate = h264_args(h, rng)
        lr, nbytes = encode_h264(lr, args, rate=rate)
        rec["h264"] = {"args": " ".join(args), "rate": list(rate), "bytes": nbytes}
        lr = list(lr)
    return lr, hr, rec


def generate(opt, out, limit=None, log=print):
    d = opt["data"]
    scale = int(opt["model"]["scale"])
    lr_size = int(d.get("lr_size", 80))
    n_clips = int(limit or d.get("clips", 1000))
    frames = int(d.get("frames", 6))
    seed = int(d.get("seed", 0))
    photos = training_photos(d.get("city100", True), d.get("gnome", True))
    photos = [(p, i) for p, i in photos if min(i.shape[:2]) >= lr_size * scale + 64]
    weights = [math.sqrt(i.shape[0] * i.shape[1]) for _, i in photos]
    lrs, hrs = [], []
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(out, "clips.jsonl"), "w") as jf:
        for k in range(n_clips):
            rng = random.Random(seed * 1000003 + k)
            pi = rng.choices(range(len(photos)), weights=weights)[0]
            lr, hr, rec = make_clip(photos[pi][1], scale, lr_size, frames, d.get("degradation", {}), d, rng)
            keep = [frames - 1] + ([0] if rng.random() < d.get("p_keep_first", 0.3) else [])
            for t in keep:
                lrs.append(lr[t])
                hrs.append(hr[t])
            rec.update(clip=k, photo=os.path.relpath(photos[pi][0], "/") if photos[pi][0].startswith("/usr") else os.path.basename(photos[pi][0]), kept=keep)
            jf.write(json.dumps(rec) + "\n")
            if (k + 1) % 100 == 0:
                log(f"gen_pairs: {k + 1}/{n_clips} clips, {len(lrs)} pairs, {time.time() - t0:.0f}s")
    path = os.path.join(out, "data.npz")
    np.savez(path + ".tmp.npz", lr=np.stack(lrs), hr=np.stack(hrs))
    os.replace(path + ".tmp.npz", path)
    log(f"gen_pairs: wrote {path}: {len(lrs)} pairs (LR {lr_size}x{lr_size}, x{scale}) in {time.time() - t0:.0f}s")
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("options", help="training options whose data.kind is codec_pairs")
    ap.add_argument("--out", help="folder (default: data.dir of the options)")
    ap.add_argument("--limit", type=int, help="generate only this many clips (quick checks)")
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    try:
        from .train import load_options
        opt = load_options(a.options)
        out = a.out or opt["data"].get("dir")
        if not out:
            raise ValueError("options lack data.dir (where data.npz goes)")
        generate(opt, out, a.limit)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"gen_pairs: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
