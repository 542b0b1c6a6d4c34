"""Reference DAN: SwinIR-M backbone with the frequency-domain branch.

Parameter and buffer names follow SwinIRv6_1_0_3 in github.com/dummerchen/DAN
(KAIR-based), so a .pth trained there loads by name (strict) into SwinIRDAN built with the
same options (img_size matters: the shifted-window masks are stored buffers). Written for
danstream; the FFTs use dft.DFT2 (torch.fft in eager mode, MatMuls when exported).
Too heavy for CPU real time (~53 GMAC per 64x64 LR tile at x4); DANLite is the default.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F

from .dft import DFT2
from .lora import MergedLoRALinear
from .model import RGB_MEAN


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def window_reverse(win, ws, h, w):
    b = int(win.shape[0] / (h * w / ws / ws))
    x = win.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads, use_lora, r):
        super().__init__()
        self.dim, self.ws, self.heads = dim, ws, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = MergedLoRALinear(dim, 3 * dim, r=r) if use_lora else nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


def shifted_mask(h, w, ws, shift):
    img = torch.zeros(1, h, w, 1)
    cnt = 0
    sl = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for hs in sl:
        for wsl in sl:
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).view(-1, ws * ws)
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)


class SwinBlock(nn.Module):
    def __init__(self, dim, res, heads, ws, shift, mlp_ratio, use_lora, r):
        super().__init__()
        if min(res) <= ws:
            shift, ws = 0, min(res)
        self.ws, self.shift, self.res = ws, shift, tuple(res)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads, use_lora, r)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", shifted_mask(*self.res, ws, shift) if shift > 0 else None)

    def forward(self, x, size):
        h, w = size
        b, _, c = x.shape
        sc = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), (1, 2))
        win = window_partition(x, self.ws).view(-1, self.ws * self.ws, c)
        mask = None
        if self.shift:
            mask = self.attn_mask if tuple(size) == self.res else shifted_mask(h, w, self.ws, self.shift).to(x.device)
        x = window_reverse(self.attn(win, mask).view(-1, self.ws, self.ws, c), self.ws, h, w)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), (1, 2))
        x = sc + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, ws, mlp_ratio, use_lora, lora_blocks, r):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinBlock(dim, res, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio,
                      use_lora and i in lora_blocks, r) for i in range(depth)])

    def forward(self, x, size):
        for blk in self.blocks:
            x = blk(x, size)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, dim, norm):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


def unembed(x, size):
    b, _, c = x.shape
    return x.transpose(1, 2).view(b, c, size[0], size[1])


class RSTB(nn.Module):
    def __init__(self, dim, res, depth, heads, ws, mlp_ratio, use_lora, lora_blocks, r):
        super().__init__()
        self.residual_group = BasicLayer(dim, res, depth, heads, ws, mlp_ratio, use_lora, lora_blocks, r)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim, False)

    def forward(self, x, size):
        return self.patch_embed(self.conv(unembed(self.residual_group(x, size), size))) + x


def upsample(scale, feat):
    m = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            m += [nn.Conv2d(feat, 4 * feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        m += [nn.Conv2d(feat, 9 * feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale {scale} not supported (2^n or 3)")
    return nn.Sequential(*m)


def _cbn(c, relu):
    layers = [nn.Conv2d(c, c, 1, 1, 0, groups=c), nn.BatchNorm2d(c)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FRDB(nn.Module):
    """Frequency fusion: 1x1 projection of group features -> FFT -> two residual
    depth-wise (1x1, groups=C) conv + BatchNorm units (reference names)."""

    def __init__(self, gb_feat, embed_dim):
        super().__init__()
        self.conv = nn.Conv2d(embed_dim, gb_feat // 2, 1)
        self.fu_blocks = nn.ModuleList([nn.Sequential(_cbn(gb_feat, True), _cbn(gb_feat, False)) for _ in range(2)])

    def forward(self, g, feature, dft):
        freq = dft(self.conv(feature))
        g = self.fu_blocks[0](g) + g
        return self.fu_blocks[1](g + freq) + g


class SwinIRDAN(nn.Module):
    def __init__(self, scale=4, img_size=96, embed_dim=180, depths=(6, 6, 6, 6, 6, 6), num_heads=(6, 6, 6, 6, 6, 6),
                 window_size=8, mlp_ratio=2.0, rank=4, lora_layers=(0, 1, 2, 3, 4, 5), use_lora_block=(0, 1, 2, 3, 4),
                 gb_feat=64, img_range=1.0, tile=None):
        super().__init__()
        self.cfg = dict(arch="swinir_dan", scale=scale, img_size=img_size, embed_dim=embed_dim, depths=list(depths),
                        num_heads=list(num_heads), window_size=window_size, mlp_ratio=mlp_ratio, rank=rank,
                        lora_layers=list(lora_layers), use_lora_block=list(use_lora_block), gb_feat=gb_feat,
                        img_range=img_range, tile=tile)
        self.scale, self.ws, self.img_range = scale, window_size, img_range
        self.tile = tile or img_size
        num_feat = 64
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, True)
        res = (img_size, img_size)
        self.layers = nn.ModuleList([
            RSTB(embed_dim, res, depths[i], num_heads[i], window_size, mlp_ratio, i in lora_layers,
                 list(use_lora_block), rank) for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = upsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        # frequency-domain adaptation branch
        self.lora_gb_conv_first = nn.Conv2d(6, gb_feat, 3, 1, 1)
        self.lora_gb_block = nn.ModuleList([FRDB(gb_feat, embed_dim) for _ in range(len(depths))])
        self.lora_gb_before_upsample = nn.Sequential(nn.Conv2d(gb_feat, num_feat * 2, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.lora_gb_upsample = upsample(scale, num_feat * 2)
        self.lora_gb_conv_last = nn.Conv2d(num_feat * 2, 6, 3, 1, 1)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        h, w = x.shape[2:]
        ph, pw = (self.ws - h % self.ws) % self.ws, (self.ws - w % self.ws) % self.ws
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), "reflect")
        x = (x - self.mean) * self.img_range
        size = (x.shape[2], x.shape[3])
        dft_lr = DFT2(*size).to(x.device)
        dft_hr = DFT2(size[0] * self.scale, size[1] * self.scale).to(x.device)
        x0 = self.conv_first(x)
        t = self.patch_embed(x0)
        feats = []
        for layer in self.layers:
            t = layer(t, size)
            feats.append(unembed(self.norm(t), size))
        x1 = unembed(self.norm(t), size)
        x2 = self.conv_after_body(x1) + x0
        x4 = self.upsample(self.conv_before_upsample(x2))
        o1 = self.conv_last(x4)
        f0 = self.lora_gb_conv_first(dft_lr(x))
        f = f0
        for blk, feat in zip(self.lora_gb_block, feats):
            f = blk(f, feat, dft_lr)
        f2 = self.lora_gb_upsample(self.lora_gb_before_upsample(f + f0))
        o2 = dft_hr.inverse(self.lora_gb_conv_last(f2 + dft_hr(x4)))
        o1 = o1 / self.img_range + self.mean
        o2 = o2 / self.img_range + self.mean
        s = self.scale
        return o1[:, :, :h * s, :w * s], o2[:, :, :h * s, :w * s]

    def macs_per_lr_pixel(self):
        return None
