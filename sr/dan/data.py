"""Training data: synthetic pairs from natural photos, and real City100 pairs.

Synthetic degradation (pre-training): optional Gaussian blur of the HR, anti-aliased
bicubic down-scaling (PIL BICUBIC, the kernel the Set5/Set14/BSD100 x4 LR images were made
with; OpenCV's INTER_CUBIC does not anti-alias and trains for the wrong LR), Gaussian noise
and JPEG compression, each with a probability from the options.

City100 (adaptation): LR image resized by 1/scale with INTER_AREA, compared with HR
(the protocol of ../shared/data/README.md). Only the fixed TRAIN split is ever read here.
"""
import glob
import os
import random

import cv2
import numpy as np
import torch

try:
    from PIL import Image
except ImportError:  # PIL is optional: fall back to OpenCV's anti-aliasing INTER_AREA
    Image = None

DATA_ROOT = os.environ.get("DANSTREAM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
CITY100_EVAL = {1, 16, 48, 60, 98} | set(range(81, 101))


def data_root() -> str:
    return os.path.abspath(DATA_ROOT)


def photo_paths(max_side=2600):
    """Debian-packaged natural photos (opencv-doc examples, Plasma wallpapers): one
    wallpaper size per theme (the largest up to max_side) to keep memory modest.
    $DANSTREAM_PHOTOS, a folder of images, replaces them (a GPU machine without these
    Debian packages gets the same files copied there by `python3 -m sr.dan.devpack photos`)."""
    override = os.environ.get("DANSTREAM_PHOTOS")
    if override:
        paths = sorted(p for p in glob.glob(os.path.join(override, "*"))
                       if os.path.splitext(p)[1].lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise RuntimeError(f"DANSTREAM_PHOTOS={override!r} holds no .jpg or .png images")
        return paths
    paths = []
    d = "/usr/share/doc/opencv-doc/examples/data"
    for p in sorted(glob.glob(os.path.join(d, "*.jpg")) + glob.glob(os.path.join(d, "*.png"))):
        paths.append(p)
    for theme in sorted(glob.glob("/usr/share/wallpapers/*/contents/images")):
        best, best_w = None, 0
        for p in glob.glob(os.path.join(theme, "*")):
            try:
                w, h = (int(v) for v in os.path.splitext(os.path.basename(p))[0].split("x"))
            except ValueError:
                continue
            if max(w, h) <= max_side and w * h > best_w:
                best, best_w = p, w * h
        if best is None:
            cands = sorted(glob.glob(os.path.join(theme, "*")))
            best = cands[0] if cands else None
        if best:
            paths.append(best)
    return paths


def read_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path!r} (missing, corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_down(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Anti-aliased bicubic down-scaling (PIL BICUBIC) of a uint8 RGB image."""
    if Image is not None:
        return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _gauss_blur(img, sigma):
    k = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REFLECT)


def degrade(hr: np.ndarray, scale: int, opt: dict, rng: random.Random) -> np.ndarray:
    """HR uint8 RGB (size divisible by scale) -> LR uint8 RGB."""
    img = hr
    if rng.random() < opt.get("p_blur", 0.0):
        lo, hi = opt.get("blur_sigma", [0.2, 1.5])
        img = _gauss_blur(img, rng.uniform(lo, hi))
    h, w = img.shape[:2]
    lr = resize_down(img, w // scale, h // scale)
    if rng.random() < opt.get("p_noise", 0.0):
        lo, hi = opt.get("noise_sigma", [1.0, 8.0])
        sig = rng.uniform(lo, hi)
        n = np.random.default_rng(rng.getrandbits(32)).normal(0, sig, lr.shape)
        lr = np.clip(lr.astype(np.float32) + n, 0, 255).astype(np.uint8)
    if rng.random() < opt.get("p_jpeg", 0.0):
        lo, hi = opt.get("jpeg_quality", [50, 95])
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(lr, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, rng.randint(lo, hi)])
        lr = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return lr


def _augment(lr, hr, rng):
    if rng.random() < 0.5:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if rng.random() < 0.5:
        lr, hr = lr[::-1], hr[::-1]
    if rng.random() < 0.5:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


def to_tensor(batch, uint8=False):
    """HWC uint8 images -> NCHW tensor: float in [0, 1], or uint8 as is (what loader
    workers hand over: a quarter of the bytes; the trainer divides by 255 on its device)."""
    a = np.ascontiguousarray(np.stack(batch))
    t = torch.from_numpy(a if uint8 else a.astype(np.float32) / 255.0)
    return t.permute(0, 3, 1, 2).contiguous()


class PatchSource:
    """A source of random (LR, HR) uint8 patch pairs: subclasses define sample()."""

    def batch(self, n, uint8=False):
        pairs = [self.sample() for _ in range(n)]
        return to_tensor([p[0] for p in pairs], uint8), to_tensor([p[1] for p in pairs], uint8)


class SyntheticPatches(PatchSource):
    """Random HR crops of Debian photos, degraded on the fly."""

    def __init__(self, scale, tile, degradation: dict, seed=0, paths=None, rescale=(0.5, 1.0)):
        self.scale, self.tile, self.opt = scale, tile, degradation
        self.rng = random.Random(seed)
        self.rescale = rescale
        self.images = []
        for p in (paths or photo_paths()):
            img = read_rgb(p)
            if min(img.shape[:2]) >= tile * scale:
                self.images.append(img)
        if not self.images:
            raise RuntimeError("no training photos found (install opencv-doc and plasma-workspace-wallpapers)")
        # Bigger photos hold more distinct patches: sample proportionally to area.
        self.weights = [i.shape[0] * i.shape[1] for i in self.images]

    def sample(self):
        rng = self.rng
        img = rng.choices(self.images, weights=self.weights)[0]
        hs = self.tile * self.scale
        # Crop a window, then shrink it by a random factor (scale diversity, less noise).
        f = rng.uniform(*self.rescale)
        cs = min(int(round(hs / f)), min(img.shape[:2]))
        y = rng.randrange(0, img.shape[0] - cs + 1)
        x = rng.randrange(0, img.shape[1] - cs + 1)
        crop = img[y:y + cs, x:x + cs]
        hr = crop if cs == hs else resize_down(np.ascontiguousarray(crop), hs, hs)
        lr = degrade(np.ascontiguousarray(hr), self.scale, self.opt, rng)
        return _augment(lr, hr, rng)


def city100_ids(split: str):
    if split == "train":
        return [i for i in range(1, 101) if i not in CITY100_EVAL]
    if split == "eval":
        return sorted(CITY100_EVAL)
    raise ValueError(f"unknown City100 split {split!r} (train or eval)")


def city100_pair(i: int, scale: int, root=None):
    """(LR uint8 RGB at 1/scale by INTER_AREA, HR uint8 RGB) for pair i."""
    root = os.path.join(root or data_root(), "city100_iphonex")
    hr = read_rgb(os.path.join(root, "HR", f"{i:03d}H.PNG"))
    lr_full = read_rgb(os.path.join(root, "LR", f"{i:03d}L.PNG"))
    h, w = hr.shape[:2]
    h, w = h - h % scale, w - w % scale
    hr, lr_full = hr[:h, :w], lr_full[:h, :w]
    lr = cv2.resize(lr_full, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    return lr, hr


class AlignedPatches(PatchSource):
    """Random aligned LR/HR crops (with flips and transposes) of real pairs in memory:
    subclasses fill self.pairs with (LR, HR) uint8 RGB arrays, HR = LR x scale."""

    def __init__(self, scale, tile, seed=0):
        self.scale, self.tile = scale, tile
        self.rng = random.Random(seed)
        self.pairs = []

    def sample(self):
        lr, hr = self.rng.choice(self.pairs)
        t, s = self.tile, self.scale
        y = self.rng.randrange(0, lr.shape[0] - t + 1)
        x = self.rng.randrange(0, lr.shape[1] - t + 1)
        return _augment(lr[y:y + t, x:x + t], hr[y * s:(y + t) * s, x * s:(x + t) * s], self.rng)


class City100Patches(AlignedPatches):
    """Random aligned crops of the City100 iPhoneX TRAIN split (never the EVAL split)."""

    def __init__(self, scale, tile, seed=0, root=None, split="train"):
        if split != "train":
            raise ValueError("training reads the City100 TRAIN split only")
        super().__init__(scale, tile, seed)
        r = os.path.join(root or data_root(), "city100_iphonex")
        if not os.path.isdir(r):
            raise FileNotFoundError(f"City100 data not found at {r} (set DANSTREAM_DATA)")
        self.pairs = [city100_pair(i, scale, root) for i in city100_ids("train")]


# --- Camera pairs (issue 7): the dataset `danstream` collects from a camera's
# sub (LR) and main (HR) streams: <dir>/manifest.json listing NNNNNNNN_lr.png /
# NNNNNNNN_hr.png, oldest first. The validation slice is the newest
# `val_fraction` of the pairs (consecutive frames are near-duplicates, so a
# contiguous block, not a random sample, keeps it honest); the Go side
# (`danstream adapt`) uses the same rule.
def pairs_dir_split(root: str, val_fraction: float = 0.2):
    """(train entries, val entries) of a pair folder's manifest."""
    import json
    path = os.path.join(root, "manifest.json")
    with open(path) as f:
        man = json.load(f)
    pairs = man.get("pairs") or []
    if len(pairs) < 2:
        raise ValueError(f"pair folder {root!r}: {len(pairs)} pairs in manifest.json, need at least 2")
    n_val = max(1, int(round(len(pairs) * val_fraction)))
    return pairs[:-n_val], pairs[-n_val:], man


def pairs_dir_pair(root: str, entry: dict, scale: int):
    """(LR, HR) uint8 RGB of one manifest entry, HR checked to be LR x scale."""
    lr = read_rgb(os.path.join(root, entry["lr"]))
    hr = read_rgb(os.path.join(root, entry["hr"]))
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise ValueError(f"pair folder {root!r}: {entry['hr']} is {hr.shape[1]}x{hr.shape[0]}, "
                         f"want {lr.shape[1] * scale}x{lr.shape[0] * scale} (LR x{scale})")
    return lr, hr


class PairsDirPatches(AlignedPatches):
    """Random aligned crops of the TRAIN part of a collected camera pair folder."""

    def __init__(self, scale, tile, seed=0, root=None, val_fraction=0.2):
        if not root or not os.path.isdir(root):
            raise FileNotFoundError(f"pair folder {root!r} not found (data.dir)")
        super().__init__(scale, tile, seed)
        train, _, man = pairs_dir_split(root, val_fraction)
        if int(man.get("scale", scale)) != scale:
            raise ValueError(f"pair folder {root!r} holds x{man.get('scale')} pairs, the model is x{scale}")
        self.pairs = [pairs_dir_pair(root, e, scale) for e in train]


class CodecPairs(AlignedPatches):
    """Random aligned crops of the offline realistic pairs (issue 16) in <dir>/data.npz,
    made by `python3 -m sr.dan.gen_pairs OPTIONS.yml` (LR after blur/resize/noise and a
    libx264 round trip, HR the clean frame)."""

    def __init__(self, scale, tile, seed=0, root=None):
        path = os.path.join(root or "", "data.npz")
        if not root or not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} not found: make it with `python3 -m sr.dan.gen_pairs OPTIONS.yml`")
        super().__init__(scale, tile, seed)
        z = np.load(path)
        lr, hr = z["lr"], z["hr"]
        if hr.shape[1] != lr.shape[1] * scale or lr.shape[1] < tile:
            raise ValueError(f"{path}: LR {lr.shape[1:3]} / HR {hr.shape[1:3]} do not fit x{scale} with {tile}-pixel tiles")
        self.pairs = list(zip(lr, hr))
