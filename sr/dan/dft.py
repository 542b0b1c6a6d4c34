"""Orthonormal 2-D DFT and inverse as matrix products for a fixed size.

torch 1.13 cannot export torch.fft to ONNX, and ONNX Runtime's CUDA/TensorRT providers
have no DFT kernel, so the transform is written as MatMuls with precomputed cos/sin
matrices: exact, and it runs on every execution provider. Cost per channel is
H*W*(H+W) complex MACs, so callers keep the number of transformed channels small.

Layout of a spectrum tensor: real and imaginary parts interleaved per channel,
[N, 2C, H, W] = (c0.re, c0.im, c1.re, c1.im, ...), as the reference code's FFT helper.
"""
import math

import torch
from torch import nn


def _use_matmul(mod) -> bool:
    # Export (and tests that ask for it) use the MatMul form; eager PyTorch uses torch.fft,
    # which is far faster here (Debian's torch has a generic BLAS) and equal to ~1e-6.
    return mod.force_matmul or torch.onnx.is_in_onnx_export()


def _dft_mats(n: int):
    k = torch.arange(n, dtype=torch.float64)
    ang = 2.0 * math.pi * torch.outer(k, k) / n
    s = 1.0 / math.sqrt(n)
    # F = C + iS with F[k, m] = exp(-2*pi*i*k*m/n) / sqrt(n)
    return (torch.cos(ang) * s).float(), (-torch.sin(ang) * s).float()


class DFT2(nn.Module):
    """Orthonormal 2-D DFT over the last two dims for a fixed (h, w)."""

    def __init__(self, h: int, w: int = None):
        super().__init__()
        w = h if w is None else w
        self.h, self.w = int(h), int(w)
        ch, sh = _dft_mats(self.h)
        cw, sw = _dft_mats(self.w)
        # Non-persistent: derived from the size, so checkpoints stay small and strict
        # loading does not depend on them.
        self.register_buffer("ch", ch, persistent=False)
        self.register_buffer("sh", sh, persistent=False)
        self.register_buffer("cw", cw, persistent=False)
        self.register_buffer("sw", sw, persistent=False)
        self.force_matmul = False

    def _check(self, x):
        if x.shape[-2] != self.h or x.shape[-1] != self.w:
            raise ValueError(f"DFT2 built for {self.h}x{self.w}, got {tuple(x.shape[-2:])}")

    def forward_complex(self, x: torch.Tensor):
        """Real input [..., H, W] -> (re, im) of its orthonormal DFT."""
        self._check(x)
        # Rows first (x @ F_W; F is symmetric), then columns (F_H @ Y).
        yr = torch.matmul(x, self.cw)
        yi = torch.matmul(x, self.sw)
        zr = torch.matmul(self.ch, yr) - torch.matmul(self.sh, yi)
        zi = torch.matmul(self.ch, yi) + torch.matmul(self.sh, yr)
        return zr, zi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real [N, C, H, W] -> interleaved spectrum [N, 2C, H, W]."""
        if _use_matmul(self):
            zr, zi = self.forward_complex(x)
        else:
            self._check(x)
            z = torch.fft.fft2(x, norm="ortho")
            zr, zi = z.real, z.imag
        # Literal sizes, batch -1: a traced x.shape exports as Shape/Gather/Unsqueeze/Concat
        # nodes before every Reshape, ~10 % of the bundled x4's ONNX Runtime time.
        return torch.stack((zr, zi), dim=2).reshape(-1, 2 * int(x.shape[1]), self.h, self.w)

    def inverse_real(self, zr: torch.Tensor, zi: torch.Tensor) -> torch.Tensor:
        """Real part of the orthonormal inverse DFT of (zr + i*zi)."""
        self._check(zr)
        # Y = Z @ conj(F_W), then Re(conj(F_H) @ Y): only the real part is formed in the
        # last step, which saves two of the eight products.
        yr = torch.matmul(zr, self.cw) + torch.matmul(zi, self.sw)
        yi = torch.matmul(zi, self.cw) - torch.matmul(zr, self.sw)
        return torch.matmul(self.ch, yr) + torch.matmul(self.sh, yi)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """Interleaved spectrum [N, 2C, H, W] -> real part of the inverse [N, C, H, W]."""
        self._check(spec)
        s = spec.reshape(-1, int(spec.shape[1]) // 2, 2, self.h, self.w)  # literal sizes, as in forward
        if _use_matmul(self):
            return self.inverse_real(s[:, :, 0], s[:, :, 1])
        return torch.fft.ifft2(torch.complex(s[:, :, 0], s[:, :, 1]), norm="ortho").real

    def macs_per_channel(self) -> dict:
        """Real multiply-adds per channel (forward of a real map, real part of inverse)."""
        hw = self.h * self.w
        return {"forward": 2 * hw * self.w + 4 * hw * self.h,
                "inverse_real": 4 * hw * self.w + 2 * hw * self.h}


_CACHE = {}


def dft2_for(h: int, w: int, device=None) -> DFT2:
    """Shared DFT2 for a size (used by the reference SwinIR-DAN at arbitrary sizes)."""
    key = (h, w, str(device))
    if key not in _CACHE:
        _CACHE[key] = DFT2(h, w).to(device)
    return _CACHE[key]
