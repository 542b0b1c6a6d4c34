"""Pack the training data for a machine that lacks it (a lent GPU box: no Debian photo
packages, no ../shared/data), within its 64 MiB transfer limit, and unpack it there.

  python3 -m sr.dan.devpack photos DIR        copy the pre-training photos (photo_paths) to DIR
  python3 -m sr.dan.devpack city100 DIR       City100 iPhoneX TRAIN split (x2 pairs) as lossless WebP
  python3 -m sr.dan.devpack unpack DIR ROOT   WebP -> PNG at ROOT/city100_iphonex (DANSTREAM_DATA=ROOT)

Lossless WebP is bit-exact and ~30% smaller than the PNG files; only the TRAIN split is
packed (the EVAL split never leaves this machine's evaluation).
"""
import glob
import os
import shutil
import sys

import cv2

from . import data as D


def pack_photos(dst):
    os.makedirs(dst, exist_ok=True)
    paths = D.photo_paths()
    for i, p in enumerate(paths):
        # Index prefix: sorted order on the other machine = photo_paths order here.
        shutil.copyfile(p, os.path.join(dst, f"{i:03d}_{os.path.basename(p)}"))
    return len(paths)


def pack_city100(dst):
    """HR as is; LR as the x2 training input city100_pair makes (INTER_AREA of the LR shot),
    a quarter of the pixels. unpack() writes that LR back nearest-neighbour x2, which
    INTER_AREA maps exactly onto the packed pixels, so x2 training reads identical pairs."""
    src = os.path.join(D.data_root(), "city100_iphonex")
    for sub in ("HR", "LR"):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    n = 0
    for i in D.city100_ids("train"):
        lr, hr = D.city100_pair(i, 2)
        full = _lr_full(lr)
        if not (full.shape[:2] == hr.shape[:2]
                and (cv2.resize(full, lr.shape[1::-1], interpolation=cv2.INTER_AREA) == lr).all()):
            raise ValueError(f"City100 pair {i}: packed LR would not round-trip exactly")
        for sub, suffix, img in (("HR", "H", hr), ("LR", "L", lr)):
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])  # >100: lossless
            if not ok or not (cv2.imdecode(buf, cv2.IMREAD_COLOR) == bgr).all():
                raise ValueError(f"lossless WebP round trip failed for pair {i} ({sub})")
            buf.tofile(os.path.join(dst, sub, f"{i:03d}{suffix}.webp"))
        n += 1
    return n


def _lr_full(lr):
    return cv2.resize(lr, (lr.shape[1] * 2, lr.shape[0] * 2), interpolation=cv2.INTER_NEAREST)


def unpack(src, root):
    out = os.path.join(root, "city100_iphonex")
    n = 0
    for p in sorted(glob.glob(os.path.join(src, "*", "*.webp"))):
        sub = os.path.basename(os.path.dirname(p))
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode {p}")
        if sub == "LR":
            img = _lr_full(img)
        cv2.imwrite(os.path.join(out, sub, os.path.basename(p)[:-5] + ".PNG"), img)
        n += 1
    return n


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "photos":
            print(f"{pack_photos(argv[1])} photos -> {argv[1]}")
        elif len(argv) == 2 and argv[0] == "city100":
            print(f"{pack_city100(argv[1])} City100 TRAIN pairs -> {argv[1]}")
        elif len(argv) == 3 and argv[0] == "unpack":
            print(f"{unpack(argv[1], argv[2])} images -> {argv[2]}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (ValueError, OSError, RuntimeError) as e:
        print(f"devpack: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
