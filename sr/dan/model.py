"""DAN networks: DANLite (real-time CPU default) and the reference SwinIR-DAN.

Both return (spatial_out, freq_out); freq_out, the frequency-branch output, is the image.

DANLite, per fixed LR tile T (the DFT is global over the tile, so train/export/serve at T):
  spatial domain  xn = x - mean; f0 = conv_first(xn); G residual groups of 3x3 convs
                  (LeakyReLU); f = conv_after_body(f_G) + f0; conv_up -> 3*s*s maps (the HR
                  residual in sub-pixel "polyphase" layout) + fixed bicubic up-sampling of x
                  (expressed as a conv + pixel-shuffle) = spatial_ps; spatial_out = shuffle.
  frequency       g0 = gb_conv_first(DFT(xn)); per group i: gb_block_i fuses the DFT of a
  domain          1x1 projection of group i's features into g (residual depth-wise units);
                  h = gb_before(g + g0) + DFT(gb_proj_out(f)); delta = gb_conv_last(h) is the
                  predicted correction of the HR spectrum, 2 x 3*s*s maps (re/im);
                  freq_ps = spatial_ps + Re(IDFT(delta)); freq_out = shuffle(freq_ps).
  Because the DFT is linear, spatial_ps + IDFT(delta) == IDFT(DFT(spatial_ps) + delta): the
  branch predicts the HR spectrum as the backbone's spectrum plus a learned correction.
  gb_conv_last starts at zero, so a freshly added branch leaves the backbone's output as is.
  Differences from the reference (cost on a 2-core CPU): the HR spectrum is handled in
  polyphase form (s*s LR-size DFTs per colour instead of one HR-size DFT: s times cheaper),
  the fused feature maps are few (proj channels), and BatchNorm is left out.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F

from .dft import DFT2

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _cubic(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_polyphase_weight(scale: int) -> torch.Tensor:
    """Conv weight [3*s*s, 1, 5, 5] (groups=3, replicate pad 2) whose pixel-shuffled output
    equals F.interpolate(x, scale_factor=s, mode='bicubic', align_corners=False)."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)  # per phase, offsets -2..2
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        base = math.floor(d)
        frac = d - base
        for k in range(-1, 3):
            taps[p, base + k + 2] += _cubic(k - frac)
    w = torch.zeros(3 * scale * scale, 1, 5, 5, dtype=torch.float64)
    for c in range(3):
        for py in range(scale):
            for px in range(scale):
                w[c * scale * scale + py * scale + px, 0] = torch.outer(taps[py], taps[px])
    return w.float()


class GBBlock(nn.Module):
    """Frequency fusion block (reference: FRDB): project group features to proj channels,
    DFT them, and inject into two residual depth-wise units on the spectrum features."""

    def __init__(self, feat, gb_feat, proj, dft):
        super().__init__()
        self.dft = dft
        self.conv = nn.Conv2d(feat, proj, 1)
        self.inject = nn.Conv2d(2 * proj, gb_feat, 1)
        self.fu_blocks = nn.ModuleList([nn.Sequential(
            nn.Conv2d(gb_feat, gb_feat, 3, 1, 1, groups=gb_feat), nn.ReLU(inplace=True),
            nn.Conv2d(gb_feat, gb_feat, 1)) for _ in range(2)])

    def forward(self, g, feature):
        freq = self.inject(self.dft(self.conv(feature)))
        g = self.fu_blocks[0](g) + g
        return self.fu_blocks[1](g + freq) + g


class DANLite(nn.Module):
    def __init__(self, scale=4, tile=64, feat=32, groups=3, convs_per_group=2, gb_feat=16,
                 proj=4, last_kernel=1, **unused):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"DANLite supports scale 2, 3 or 4, got {scale}")
        if unused:
            raise ValueError(f"unknown DANLite options: {sorted(unused)}")
        self.cfg = dict(arch="danlite", scale=scale, tile=tile, feat=feat, groups=groups,
                        convs_per_group=convs_per_group, gb_feat=gb_feat, proj=proj,
                        last_kernel=last_kernel)
        self.scale, self.tile = scale, tile
        ss = scale * scale
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("bicubic_w", bicubic_polyphase_weight(scale), persistent=False)
        self.dft = DFT2(tile, tile)
        act = lambda: nn.LeakyReLU(0.1, inplace=True)
        # spatial domain
        self.conv_first = nn.Conv2d(3, feat, 3, 1, 1)
        self.body = nn.ModuleList()
        for _ in range(groups):
            layers = []
            for _ in range(convs_per_group):
                layers += [nn.Conv2d(feat, feat, 3, 1, 1), act()]
            self.body.append(nn.Sequential(*layers))
        self.conv_after_body = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up = nn.Conv2d(feat, 3 * ss, 3, 1, 1)
        # frequency domain
        self.gb_conv_first = nn.Conv2d(6, gb_feat, 3, 1, 1)
        self.gb_block = nn.ModuleList([GBBlock(feat, gb_feat, proj, self.dft) for _ in range(groups)])
        self.gb_before = nn.Sequential(nn.Conv2d(gb_feat, gb_feat, 3, 1, 1), act())
        self.gb_proj_out = nn.Conv2d(feat, gb_feat // 2, 1)
        self.gb_conv_last = nn.Conv2d(gb_feat, 2 * 3 * ss, last_kernel, 1, last_kernel // 2)
        with torch.no_grad():
            self.conv_up.weight.mul_(0.1)
            self.conv_up.bias.zero_()
            self.gb_conv_last.weight.zero_()
            self.gb_conv_last.bias.zero_()

    def check_input(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"DANLite expects [N,3,{self.tile},{self.tile}], got {tuple(x.shape)}")
        if x.shape[-2] != self.tile or x.shape[-1] != self.tile:
            raise ValueError(f"DANLite was built for {self.tile}x{self.tile} LR tiles "
                             f"(the DFT is fixed-size), got {x.shape[-2]}x{x.shape[-1]}")

    def forward(self, x):
        self.check_input(x)
        s = self.scale
        xn = x - self.mean
        f0 = self.conv_first(xn)
        f = f0
        feats = []
        for grp in self.body:
            f = grp(f) + f
            feats.append(f)
        f = self.conv_after_body(f) + f0
        base = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.bicubic_w, groups=3)
        spatial_ps = self.conv_up(f) + base
        # frequency branch
        g0 = self.gb_conv_first(self.dft(xn))
        g = g0
        for blk, feat in zip(self.gb_block, feats):
            g = blk(g, feat)
        h = self.gb_before(g + g0) + self.dft(self.gb_proj_out(f))
        delta = self.gb_conv_last(h)
        freq_ps = spatial_ps + self.dft.inverse(delta)
        return F.pixel_shuffle(spatial_ps, s), F.pixel_shuffle(freq_ps, s)

    def macs_per_lr_pixel(self) -> int:
        """Multiply-adds per LR pixel of one forward pass (convs + DFT matmuls)."""
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                total += k * (m.in_channels // m.groups) * m.out_channels
        total += 5 * 5 * 3 * self.scale ** 2  # fixed bicubic
        d = self.dft.macs_per_channel()
        hw = self.tile * self.tile
        fwd_ch = 3 + len(self.gb_block) * self.gb_block[0].conv.out_channels + self.gb_proj_out.out_channels
        inv_ch = 3 * self.scale ** 2
        total += (fwd_ch * d["forward"] + inv_ch * d["inverse_real"]) // hw
        return total


def grow_groups(model: "DANLite", groups: int) -> "DANLite":
    """A DANLite with more residual groups that computes exactly what `model` does: the new
    groups come after the old ones, their last conv starts at zero (so each adds nothing to
    its residual), and their frequency fusion blocks start with zero output convs (so each
    passes the spectrum features through). Training then uses the added capacity from where
    the smaller network stopped, instead of starting a bigger one from scratch."""
    old = model.cfg["groups"]
    if groups < old:
        raise ValueError(f"grow: the network has {old} groups; it can grow, not shrink to {groups}")
    if groups == old:
        return model
    cfg = dict(model.cfg, groups=groups)
    cfg.pop("arch")
    big = DANLite(**cfg)
    own = big.state_dict()
    own.update(model.state_dict())  # old keys keep their trained values
    big.load_state_dict(own)
    with torch.no_grad():
        for i in range(old, groups):
            last = [m for m in big.body[i] if isinstance(m, nn.Conv2d)][-1]
            last.weight.zero_()
            last.bias.zero_()
            blk = big.gb_block[i]
            for conv in (blk.inject, blk.fu_blocks[0][2], blk.fu_blocks[1][2]):
                conv.weight.zero_()
                conv.bias.zero_()
    return big


def build_model(cfg: dict) -> nn.Module:
    """Build a network from an options dict (arch: danlite | swinir_dan)."""
    cfg = dict(cfg)
    arch = cfg.pop("arch", "danlite")
    if arch == "danlite":
        return DANLite(**cfg)
    if arch == "swinir_dan":
        from .swinir import SwinIRDAN
        return SwinIRDAN(**cfg)
    raise ValueError(f"unknown arch {arch!r} (want danlite or swinir_dan)")


def load_state_strict(model: nn.Module, state: dict, allow_missing=(), source="checkpoint"):
    """Load by name; missing or unexpected keys give one clear error naming them.
    allow_missing: regexes of keys that may be absent (e.g. lora_ when starting adaptation
    from a pre-trained checkpoint)."""
    import re
    own = model.state_dict()
    missing = [k for k in own if k not in state and not any(re.search(p, k) for p in allow_missing)]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[:5]}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es) e.g. {shape[:3]}")
        raise ValueError(f"{source} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)


def _phase_map(src: int, dst: int):
    """For each sub-pixel phase of scale dst, the phases of scale src whose centres
    ((q + 0.5) / src) are nearest to its own ((p + 0.5) / dst)."""
    out = []
    for p in range(dst):
        c = (p + 0.5) / dst
        d = [abs((q + 0.5) / src - c) for q in range(src)]
        best = min(d)
        out.append([q for q in range(src) if abs(d[q] - best) < 1e-9])
    return out


def change_scale(model: "DANLite", scale: int) -> "DANLite":
    """The same network at another up-sampling scale: every layer but the two that emit
    sub-pixel planes (conv_up, gb_conv_last) keeps its weights; those two get, for each new
    phase, the mean of the old phases nearest to it (a residual of the right kind from the
    first step, not a random one). Used to start x3 from the trained x4 (or x2) body."""
    old = model.scale
    if scale == old:
        return model
    cfg = dict(model.cfg, scale=scale)
    cfg.pop("arch")
    new = DANLite(**cfg)
    own = new.state_dict()
    src = model.state_dict()
    pm = _phase_map(old, scale)
    so, sn = old * old, scale * scale

    def remap(w, per):  # w: [3*so*per, ...] -> [3*sn*per, ...]; per = 1 (conv_up) or 2 (re/im)
        rows = []
        for c in range(3):
            for py in range(scale):
                for px in range(scale):
                    for k in range(per):
                        idx = [(c * so + qy * old + qx) * per + k for qy in pm[py] for qx in pm[px]]
                        rows.append(w[idx].mean(0))
        return torch.stack(rows)

    for k, v in src.items():
        if k.startswith("conv_up.") or k.startswith("gb_conv_last."):
            own[k] = remap(v, 1 if k.startswith("conv_up.") else 2)
        else:
            own[k] = v
    new.load_state_dict(own)
    return new
