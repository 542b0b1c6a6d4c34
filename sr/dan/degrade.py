"""Realistic degradation (issue 16): LR made from HR the way a camera makes its sub stream.

Every operation takes a uint8 RGB image and a random.Random, draws its parameters from an
options dict (YAML, `data.degradation` of sr/dan/options/*_real*.yml), and is seeded
through that Random only, so a seed reproduces a clip bit for bit (ffmpeg's libx264 is
deterministic for the same input and options with one thread, which we ask for).

Order one (always) then, with probability `p_second_order`, order two, as Real-ESRGAN /
BSRGAN do:
  order 1: blur (isotropic or anisotropic Gaussian) -> resize (area, bicubic or bilinear)
           -> noise (Gaussian or Poisson, luma-only or colour) -> JPEG (OpenCV)
  order 2: blur -> resize to the final LR size -> noise -> JPEG
With one order the resize goes straight to the LR size; with two, order 1 resizes to an
intermediate size between LR and HR. Last, the clip's LR frames are encoded by libx264
(ffmpeg, yuv420p, P frames, GOP 25, CRF or bit-rate mode) and decoded: `encode_h264`. The
codec step works on whole clips (a sub stream's P frames), so it is done offline
(sr.dan.gen_pairs), not per patch in the loader.
"""
import math
import os
import subprocess

import cv2
import numpy as np

try:
    from PIL import Image
except ImportError:
    Image = None

RESIZE_MODES = ("area", "bicubic", "bilinear")


def _u(rng, lohi):
    lo, hi = lohi
    return rng.uniform(float(lo), float(hi))


def gaussian_kernel(size, sig_x, sig_y, theta):
    """Normalised (anisotropic) Gaussian kernel, size x size, rotated by theta (radians)."""
    r = size // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    xr, yr = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((xr / sig_x) ** 2 + (yr / sig_y) ** 2))
    return k / k.sum()


def blur(img, opt, rng):
    """Isotropic (sigma in opt.sigma) or, with opt.p_aniso, anisotropic Gaussian blur."""
    lo_hi = opt.get("sigma", [0.2, 1.5])
    if rng.random() < opt.get("p_aniso", 0.0):
        sx, sy, th = _u(rng, lo_hi), _u(rng, lo_hi), rng.uniform(0, math.pi)
    else:
        sx = sy = _u(rng, lo_hi)
        th = 0.0
    size = int(2 * math.ceil(3 * max(sx, sy)) + 1)
    k = gaussian_kernel(size, sx, sy, th).astype(np.float32)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def resize(img, w, h, mode):
    """area: OpenCV INTER_AREA (pixel averaging, what most ISPs' scalers approximate);
    bicubic: PIL BICUBIC (anti-aliased); bilinear: OpenCV INTER_LINEAR (no anti-aliasing,
    the aliasing of a cheap scaler)."""
    if mode == "area":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if mode == "bicubic":
        if Image is not None:
            return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    if mode == "bilinear":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    raise ValueError(f"unknown resize mode {mode!r} (want one of {RESIZE_MODES})")


def pick_mode(opt, rng):
    modes = opt.get("modes", {"area": 1.0})
    if isinstance(modes, (list, tuple)):
        modes = {m: 1.0 for m in modes}
    for m in modes:
        if m not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {m!r} (want one of {RESIZE_MODES})")
    names = sorted(modes)
    return rng.choices(names, weights=[float(modes[n]) for n in names])[0]


def noise(img, opt, rng):
    """Gaussian (sigma in 0-255 units) or Poisson (photon shot noise, opt.poisson_scale:
    larger = noisier) noise; with opt.p_gray the same noise on all three channels (luma
    noise), else independent per channel (chroma noise too)."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    gray = rng.random() < opt.get("p_gray", 0.4)
    x = img.astype(np.float32)
    if rng.random() < opt.get("p_poisson", 0.0):
        scale = _u(rng, opt.get("poisson_scale", [0.05, 0.5]))
        vals = 10 ** 2 / scale  # photons at full white: fewer -> noisier
        base = x.mean(axis=2, keepdims=True) if gray else x
        n = nrng.poisson(np.clip(base, 0, 255) / 255.0 * vals) / vals * 255.0 - base
    else:
        sig = _u(rng, opt.get("gauss_sigma", [1.0, 8.0]))
        n = nrng.normal(0, sig, x.shape[:2] + ((1,) if gray else (3,)))
    return np.clip(x + n, 0, 255).round().astype(np.uint8)


def jpeg(img, opt, rng):
    q = rng.randint(*[int(v) for v in opt.get("quality", [40, 95])])
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("OpenCV JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class FramePlan:
    """The random draws of the spatial degradation for one clip: every frame of a clip
    goes through the same camera (same blur, scaler, noise level), only the noise differs."""

    def __init__(self, opt, scale, rng):
        self.opt, self.scale = opt, scale
        self.second = rng.random() < opt.get("p_second_order", 0.0)
        self.steps = []
        for order in ((1, 2) if self.second else (1,)):
            o = opt.get("order2" if order == 2 else "order1", opt)
            st = {}
            b = o.get("blur", {})
            if rng.random() < b.get("p", 0.0):
                st["blur_seed"] = rng.getrandbits(32)
            st["mode"] = pick_mode(o.get("resize", {}), rng)
            n = o.get("noise", {})
            if rng.random() < n.get("p", 0.0):
                st["noise_seed"] = rng.getrandbits(32)
            j = o.get("jpeg", {})
            if rng.random() < j.get("p", 0.0):
                st["jpeg_seed"] = rng.getrandbits(32)
            st["opt"] = o
            self.steps.append(st)
        # order 1 goes to an intermediate size (a fraction of the way from HR to LR)
        self.mid = _u(rng, opt.get("order2_mid", [0.3, 0.7])) if self.second else 1.0

    def apply(self, hr, rng):
        import random as _r
        h, w = hr.shape[:2]
        lw, lh = w // self.scale, h // self.scale
        img = hr
        for i, st in enumerate(self.steps):
            o = st["opt"]
            if "blur_seed" in st:
                img = blur(img, o["blur"], _r.Random(st["blur_seed"]))
            if i == len(self.steps) - 1:
                tw, th = lw, lh
            else:
                f = 1.0 / (1.0 + (self.scale - 1.0) * self.mid)
                tw, th = max(lw, int(round(w * f))), max(lh, int(round(h * f)))
            img = resize(np.ascontiguousarray(img), tw, th, st["mode"])
            if "noise_seed" in st:  # same level per clip, fresh noise per frame
                nr = _r.Random(st["noise_seed"])
                lvl = _r.Random(nr.getrandbits(32))
                o2 = dict(o["noise"])
                img = noise(img, o2, _SplitRandom(lvl, rng))
            if "jpeg_seed" in st:
                img = jpeg(img, o["jpeg"], _r.Random(st["jpeg_seed"]))
        return img


class _SplitRandom:
    """Parameters from `fixed` (the clip's camera), noise samples from `fresh` (per frame)."""

    def __init__(self, fixed, fresh):
        self.fixed, self.fresh = fixed, fresh

    def random(self):
        return self.fixed.random()

    def uniform(self, a, b):
        return self.fixed.uniform(a, b)

    def getrandbits(self, k):
        return self.fresh.getrandbits(k)


def h264_args(opt, rng):
    """libx264 options for one clip: CRF (opt.crf range) or, with opt.p_bitrate, a bit rate
    in kb/s scaled to the clip's pixel count relative to 640x360 (opt.kbps range), P frames
    with GOP opt.gop, B frames with opt.p_bframes, a preset from opt.presets."""
    args = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(int(opt.get("gop", 25))),
            "-preset", rng.choice(opt.get("presets", ["veryfast", "medium"])), "-threads", "1"]
    if rng.random() >= opt.get("p_bframes", 0.0):
        args += ["-bf", "0"]
    if rng.random() < opt.get("p_bitrate", 0.0):
        return args, ("kbps", _u(rng, opt.get("kbps", [250, 1000])))
    crf = rng.randint(*[int(v) for v in opt.get("crf", [18, 36])])
    return args + ["-crf", str(crf)], ("crf", crf)


def encode_h264(frames, args, fps=25, rate=None):
    """Encode uint8 RGB frames (same even size) with ffmpeg/libx264 and decode them back:
    the frames a viewer of that stream gets. rate: ("kbps", k at 640x360) adds -b:v."""
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs an even frame size, got {w}x{h}")
    extra = []
    if rate and rate[0] == "kbps":
        kb = rate[1] * (w * h) / (640 * 360)
        extra = ["-b:v", f"{max(kb, 8):.0f}k", "-maxrate", f"{max(kb, 8) * 1.5:.0f}k", "-bufsize", f"{max(kb, 8) * 2:.0f}k"]
    raw = np.ascontiguousarray(np.stack(frames)).tobytes()
    enc = subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                          "-r", str(fps), "-i", "-"] + args + extra + ["-f", "h264", "-"],
                         input=raw, capture_output=True, check=False)
    if enc.returncode != 0:
        raise RuntimeError(f"ffmpeg libx264 encode failed: {enc.stderr.decode(errors='replace')[-400:]}")
    dec = subprocess.run(["ffmpeg", "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], input=enc.stdout, capture_output=True, check=False)
    if dec.returncode != 0:
        raise RuntimeError(f"ffmpeg H.264 decode failed: {dec.stderr.decode(errors='replace')[-400:]}")
    out = np.frombuffer(dec.stdout, np.uint8)
    n = out.size // (w * h * 3)
    if n != len(frames):
        raise RuntimeError(f"ffmpeg returned {n} frames for {len(frames)}")
    return out.reshape(n, h, w, 3), len(enc.stdout)
