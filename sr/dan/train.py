"""Train DAN-lite: one command, options from a YAML file.

  /usr/bin/python3 -m sr.dan.train sr/dan/options/x4_pretrain.yml [--resume] [--budget-min M]

Modes (options "mode"):
  pretrain  synthetic pairs from Debian photos (data.kind: synthetic)
  pretrain with "init": warm start from a checkpoint (a continuation with a new schedule)
  adapt     DAN adaptation of a pre-trained checkpoint (options "init") on real pairs:
            LoRA on the frozen layers, selective update (freeze/unfreeze regexes)
  scratch   same network, random init, trained on the same real pairs (ablation)
  "grow": {groups: N} with "init": the init network with residual groups added after its
            own, each starting as an identity, so the bigger network starts where it stopped
"train.ema": decay of a weight average (EMA) kept each iteration; final.pth holds it.
A non-finite loss stops the run at once with exit status 3 and no final.pth.
Loss: L1(image) + freq_weight * L1(orthonormal FFT, re/im) on the final (frequency-branch)
output, + spatial_weight * L1 on the spatial output. "train.pixel_loss: l2" makes the image
term the mean squared error (the metric PSNR measures), for a short last stage. Adam, cosine
learning rate over the wall-time budget (or max_iters, whichever ends first). Checkpoints at
<out>/last.pth (resume with --resume; the elapsed time carries over).
"""
import argparse
import math
import os
import random
import sys
import time

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .checkpoint import read_checkpoint
from .lora import apply_lora, count_params, merge_lora, set_trainable
from .model import build_model, change_scale, grow_groups, load_state_strict
from . import data as D


def fmt_t(s):
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def freq_l1(a, b):
    """L1 between orthonormal 2-D FFTs (real and imaginary parts). The FFT is linear and
    the images are real, so this is the half spectrum (rfft2) of the difference: one
    transform instead of two full ones, same minimiser."""
    d = torch.fft.rfft2(a - b, norm="ortho")
    return d.real.abs().mean() + d.imag.abs().mean()


class _Batches(IterableDataset):
    """Endless training batches from a patch source. With loader workers (--workers) each
    worker is a fork of the source (photos decoded once, shared copy-on-write) with its own
    random stream, so the workers do not repeat each other's patches."""

    def __init__(self, ds, batch, seed):
        self.ds, self.bs, self.seed = ds, batch, seed

    def __iter__(self):
        w = get_worker_info()
        if w is not None:
            self.ds.rng = random.Random(self.seed * 1009 + w.id + 1)
            np.random.seed((self.seed * 1009 + w.id + 1) % 2 ** 32)
        while True:
            # uint8 across processes: a quarter of the shared memory and of the host-to-GPU
            # copy; the trainer turns them into floats on its device.
            yield self.ds.batch(self.bs, uint8=True)


LOADER_TIMEOUT_S = 300


def batch_source(ds, batch, seed, workers, pin):
    """A function returning the next (lr, hr) batch: in this process (workers=0, the
    2-core default) or from worker processes that keep a GPU fed."""
    if workers <= 0:
        return lambda: ds.batch(batch)
    # timeout: a loader that stops delivering is an error with a message, not a silent hang.
    it = iter(DataLoader(_Batches(ds, batch, seed), batch_size=None, num_workers=workers,
                         pin_memory=pin, prefetch_factor=2, persistent_workers=True,
                         multiprocessing_context="fork", timeout=LOADER_TIMEOUT_S))
    return lambda: next(it)


def load_options(path):
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict):
        raise ValueError(f"options file {path!r} is not a YAML mapping")
    for k in ("name", "mode", "model", "data", "train"):
        if k not in opt:
            raise ValueError(f"options file {path!r} lacks {k!r}")
    if opt["mode"] not in ("pretrain", "adapt", "scratch"):
        raise ValueError(f"options {path!r}: mode must be pretrain, adapt or scratch, got {opt['mode']!r}")
    return opt


def make_data(opt, scale, tile, seed):
    d = opt["data"]
    if d["kind"] == "synthetic":
        return D.SyntheticPatches(scale, tile, d.get("degradation", {}), seed=seed,
                                  rescale=tuple(d.get("rescale", [0.5, 1.0])))
    if d["kind"] == "city100":
        return D.City100Patches(scale, tile, seed=seed)
    if d["kind"] == "codec_pairs":  # realistic offline pairs (issue 16), made by sr.dan.gen_pairs
        if not os.path.isfile(os.path.join(d.get("dir") or "", "data.npz")):
            from .gen_pairs import generate
            generate(opt, d.get("dir"))
        return D.CodecPairs(scale, tile, seed=seed, root=d.get("dir"))
    if d["kind"] == "pairs_dir":  # a camera's collected sub/main pairs (issue 7)
        return D.PairsDirPatches(scale, tile, seed=seed, root=d.get("dir"), val_fraction=float(d.get("val_fraction", 0.2)))
    raise ValueError(f"unknown data.kind {d['kind']!r} (synthetic, city100, codec_pairs or pairs_dir)")


def build(opt):
    """Model (+ LoRA, trainable set) from options; for adapt, start from opt['init']."""
    mcfg = dict(opt["model"])
    lora = None
    if opt["mode"] == "adapt" and not opt.get("init"):
        raise ValueError("adapt mode needs 'init': a pre-trained checkpoint")
    if opt["mode"] == "scratch" and opt.get("init"):
        raise ValueError("scratch mode starts from random weights; remove 'init'")
    if opt.get("init"):
        # adapt: start from the pre-trained network; pretrain: warm start (continuation).
        ck = read_checkpoint(opt["init"])
        for k, v in mcfg.items():
            if k == "scale" and opt.get("change_scale"):
                if int(opt["change_scale"]) != int(v):
                    raise ValueError(f"change_scale {opt['change_scale']} differs from model.scale {v}")
                continue  # "change_scale: S": start scale S from another scale's network (x3 from x4)
            if k in ck["model_cfg"] and ck["model_cfg"][k] != v:
                raise ValueError(f"init checkpoint {opt['init']!r} has {k}={ck['model_cfg'][k]}, options say {v}")
        mcfg = dict(ck["model_cfg"])
        model = build_model(mcfg)
        if ck.get("lora"):
            # An adapted checkpoint: a further stage starts from its merged weights (what
            # the export serves), with fresh LoRA layers where the options ask for them.
            apply_lora(model, ck["lora"]["layers"], int(ck["lora"]["rank"]))
        load_state_strict(model, ck["state"], source=f"init checkpoint {opt['init']!r}")
        with torch.no_grad():
            merge_lora(model)
        if opt.get("grow"):
            if mcfg.get("arch", "danlite") != "danlite":
                raise ValueError("grow: only a danlite network can grow")
            model = grow_groups(model, int(opt["grow"]["groups"]))
            mcfg = dict(model.cfg)
        if opt.get("change_scale"):
            if mcfg.get("arch", "danlite") != "danlite":
                raise ValueError("change_scale: only a danlite network can change scale")
            model = change_scale(model, int(opt["change_scale"]))
            mcfg = dict(model.cfg)
    elif opt.get("grow"):
        raise ValueError("grow needs 'init': the trained network to grow")
    else:
        model = build_model(mcfg)
    lcfg = opt.get("lora")
    if lcfg and lcfg.get("layers"):
        apply_lora(model, lcfg["layers"], int(lcfg.get("rank", 4)))
        lora = {"layers": list(lcfg["layers"]), "rank": int(lcfg.get("rank", 4))}
    n_train = set_trainable(model, opt.get("freeze", []), opt.get("unfreeze", []))
    return model, mcfg, lora, n_train


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("options")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pth")
    ap.add_argument("--budget-min", type=float, help="override train.budget_min")
    ap.add_argument("--max-iters", type=int,
                    help="override train.max_iters; the schedule then follows the iteration count, not the "
                         "wall-time budget (reproduce a GPU stage's iterations on a slower machine)")
    ap.add_argument("--out", help="override the output folder")
    ap.add_argument("--seed", type=int, help="override train.seed (a second run of the same recipe)")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (default: every core; 1 each lets two runs share a 2-core machine fairly)")
    ap.add_argument("--workers", type=int, default=0,
                    help="data loader processes (default 0: patches made between steps; a GPU needs several)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when PyTorch sees a GPU, else CPU), cpu, or cuda[:N]")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads if a.threads > 0 else os.cpu_count())
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"train: error: --device {a.device} but PyTorch sees no CUDA GPU", file=sys.stderr)
        return 2
    dev = torch.device(a.device)
    try:
        opt = load_options(a.options)
        t = opt["train"]
        if a.max_iters is not None:
            if a.max_iters < 1:
                raise ValueError(f"--max-iters must be at least 1, got {a.max_iters}")
            t["max_iters"], t["budget_min"] = a.max_iters, 10 ** 9
        if a.budget_min is not None:
            t["budget_min"] = a.budget_min
        if a.seed is not None:
            t["seed"] = a.seed
        out = a.out or opt.get("out") or os.path.join("sr", "dan", "runs", opt["name"])
        os.makedirs(out, exist_ok=True)
        seed = int(t.get("seed", 0))
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        model, mcfg, lora, n_train = build(opt)
        model.to(dev)
        scale, tile = mcfg["scale"], mcfg["tile"]
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.Adam(params, lr=float(t.get("lr", 1e-3)), betas=(0.9, 0.99))
        it, elapsed0 = 0, 0.0
        last = os.path.join(out, "last.pth")
        if a.resume:
            ck = read_checkpoint(last)
            load_state_strict(model, {k: v.to(dev) for k, v in ck["state"].items()}, source=f"checkpoint {last!r}")
            optim.load_state_dict(ck["optim"])
            it, elapsed0 = ck["iter"], ck["elapsed"]
            print(f"resumed {last} at iter {it}, {fmt_t(elapsed0)} done", flush=True)
        if a.workers > 0:
            # Forked loader workers call OpenCV: a parent that has started OpenCV's thread
            # pool leaves the children a pool whose threads do not exist (a known hang of
            # some OpenCV builds), so the parent never starts one.
            D.cv2.setNumThreads(0)
        ds = make_data(opt, scale, tile, seed + it)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2

    total = count_params(model)
    print(f"[{opt['name']}] device={dev} workers={a.workers} mode={opt['mode']} params={total} trainable={n_train} "
          f"({100.0 * n_train / total:.1f}%) lora={lora} macs/LRpx={model.macs_per_lr_pixel()}", flush=True)
    budget = float(t.get("budget_min", 10)) * 60
    if not budget > 0:
        print(f"train: error: train.budget_min must be positive, got {t.get('budget_min')}", file=sys.stderr)
        return 2
    max_iters = int(t.get("max_iters", 10 ** 7))
    lr0, lr_min = float(t.get("lr", 1e-3)), float(t.get("lr_min", 1e-5))
    warm = int(t.get("warmup", 50))
    bs = int(t.get("batch", 8))
    fw, sw = float(t.get("freq_weight", 1.0)), float(t.get("spatial_weight", 0.0))
    pixel_loss = t.get("pixel_loss", "l1")
    if pixel_loss not in ("l1", "l2"):
        print(f"train: error: train.pixel_loss must be l1 or l2, got {pixel_loss!r}", file=sys.stderr)
        return 2
    pe, ce = int(t.get("print_every", 25)), int(t.get("ckpt_every", 250))
    next_batch = batch_source(ds, bs, seed + it, a.workers, dev.type == "cuda")
    # train.ema: an exponential moving average of the weights (decay per iteration), the
    # usual last-fraction-of-a-dB for PSNR at no inference cost.
    ema_decay = float(t.get("ema", 0.0))
    if not 0.0 <= ema_decay < 1.0:
        print(f"train: error: train.ema must be in [0, 1), got {ema_decay}", file=sys.stderr)
        return 2
    ema, ema_pairs = None, []
    if ema_decay:
        sd = model.state_dict()
        if a.resume and "ema" in ck:
            ema = {k: v.to(dev) for k, v in ck["ema"].items()}
        else:
            ema = {k: v.detach().clone() for k, v in sd.items()}
        # state_dict tensors share the parameters' storage: pair them once, not every step.
        ema_pairs = [(ema[k], v) for k, v in sd.items() if v.dtype.is_floating_point]

    def save(path, final=False):
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # loadable without a GPU
        saved = {"model_cfg": mcfg, "lora": lora, "state": cpu(model.state_dict()), "optim": optim.state_dict(),
                 "iter": it, "elapsed": elapsed, "options": opt, "trainable": n_train}
        if ema is not None:
            # final.pth serves the averaged weights; last.pth keeps both so a resume goes on exactly.
            saved["ema"] = cpu(ema)
            if final:
                saved["state"], saved["ema_decay"] = saved.pop("ema"), ema_decay
        torch.save(saved, path + ".tmp")
        os.replace(path + ".tmp", path)

    model.train()
    start = time.time()
    elapsed = elapsed0
    run_loss, run_n = 0.0, 0
    tick = start
    while True:
        elapsed = elapsed0 + time.time() - start
        prog = max(it / max_iters, elapsed / budget)
        if prog >= 1.0:
            break
        lr = lr0 * min(1.0, (it + 1) / warm) if it < warm else lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * prog))
        for g in optim.param_groups:
            g["lr"] = lr
        try:
            lr_t, hr_t = next_batch()
        except RuntimeError as e:  # a loader worker died or stalled past LOADER_TIMEOUT_S
            print(f"train: error: [{opt['name']}] data loader: {e} (last checkpoint: {last})", file=sys.stderr, flush=True)
            return 2
        lr_t, hr_t = lr_t.to(dev, non_blocking=True), hr_t.to(dev, non_blocking=True)
        if lr_t.dtype == torch.uint8:  # from loader workers
            lr_t, hr_t = lr_t.float().div_(255), hr_t.float().div_(255)
        sp, fo = model(lr_t)
        loss = (fo - hr_t).abs().mean() if pixel_loss == "l1" else (fo - hr_t).square().mean()
        if fw:
            loss = loss + fw * freq_l1(fo, hr_t)
        if sw:
            loss = loss + sw * (sp - hr_t).abs().mean()
        if not torch.isfinite(loss):
            # A diverged run must not leave a final.pth behind for export or a swap.
            print(f"train: error: [{opt['name']}] loss is {loss.item()} at iteration {it + 1} (lr {lr:.2e}): "
                  f"training diverged; no final checkpoint written (last good: {last})", file=sys.stderr, flush=True)
            return 3
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        it += 1
        if ema is not None:
            d = min(ema_decay, (1 + it) / (10 + it))  # early on, follow the weights closely
            with torch.no_grad():
                for e, v in ema_pairs:
                    e.mul_(d).add_(v, alpha=1 - d)
        run_loss += loss.item()
        run_n += 1
        if it % pe == 0 or it == 10:
            el = elapsed0 + time.time() - start
            rate = run_n / max(time.time() - tick, 1e-6)
            eta = max(budget - el, 0.0)
            if max_iters < 10 ** 7 and rate > 0:
                eta = min(eta, (max_iters - it) / rate)
            print(f"[{opt['name']}] it {it} loss {run_loss / run_n:.5f} lr {lr:.2e} {rate:.2f} it/s "
                  f"elapsed {fmt_t(el)} ETA {fmt_t(eta)}", flush=True)
            run_loss, run_n = 0.0, 0
            tick = time.time()
        if it % ce == 0:
            save(last)
    save(last)
    final = os.path.join(out, "final.pth")
    save(final, final=True)
    print(f"[{opt['name']}] done: {it} iters in {fmt_t(elapsed)} -> {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
