"""Checkpoint files: {"model_cfg", "lora", "state", ...} written by train.py."""
import os
import pickle

import torch

from .lora import apply_lora
from .model import build_model, load_state_strict


def read_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} not found")
    try:
        # weights_only on torch >= 2: a checkpoint is loaded as data, never code. torch 1.13's
        # restricted loader cannot read floats (our options and step counts), so there every
        # file falls back to full unpickling: on Debian's torch, load only checkpoints you trust.
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            if int(torch.__version__.split(".")[0]) >= 2:
                raise
            ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated / not a torch file
        raise ValueError(f"checkpoint {path!r} is corrupt or not a PyTorch file: {e}") from e
    if not isinstance(ck, dict) or "state" not in ck or "model_cfg" not in ck:
        raise ValueError(f"checkpoint {path!r} is not a danstream DAN checkpoint "
                         "(needs 'model_cfg' and 'state'; train it with sr.dan.train)")
    return ck


def load_model(path: str, expect_scale: int = None):
    """Rebuild the network a checkpoint was trained as (LoRA included) and load it
    strictly. expect_scale: raise if the checkpoint's scale differs."""
    ck = read_checkpoint(path)
    cfg = ck["model_cfg"]
    if expect_scale is not None and int(cfg.get("scale", 0)) != int(expect_scale):
        raise ValueError(f"checkpoint {path!r} is a x{cfg.get('scale')} model, x{expect_scale} was asked for")
    model = build_model(cfg)
    lora = ck.get("lora")
    if lora:
        apply_lora(model, lora["layers"], lora["rank"])
    load_state_strict(model, ck["state"], source=f"checkpoint {path!r}")
    return model, ck


def slim(src: str, dst: str) -> int:
    """Copy a checkpoint without its optimizer state (a third of the size): what
    the repository ships as the start point of `danstream adapt`."""
    ck = read_checkpoint(src)
    ck.pop("optim", None)
    ck["source"] = os.path.basename(os.path.dirname(os.path.abspath(src))) + "/" + os.path.basename(src)
    torch.save(ck, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    return os.path.getsize(dst)


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 4 or sys.argv[1] != "slim":
        print("usage: python3 -m sr.dan.checkpoint slim SRC.pth DST.pth", file=sys.stderr)
        sys.exit(2)
    try:
        print(f"{sys.argv[3]}: {slim(sys.argv[2], sys.argv[3])} bytes")
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"checkpoint: error: {e}", file=sys.stderr)
        sys.exit(2)
