"""Low-rank adaptation (LoRA) for Linear and Conv2d, merge for export, freeze by pattern.

W' = W + (B @ A) * alpha / r. B starts at zero, so wrapping a trained layer leaves its
output unchanged until training moves B. Wrapped layers keep their "weight"/"bias"
names, so a checkpoint of the plain network loads into the wrapped one (plus lora_*).
"""
import math
import re
from typing import Iterable, List

import torch
from torch import nn
import torch.nn.functional as F


class LoRALinear(nn.Linear):
    def __init__(self, in_features, out_features, bias=True, r=4, alpha=None):
        super().__init__(in_features, out_features, bias=bias)
        if r <= 0:
            raise ValueError(f"LoRA rank must be > 0, got {r}")
        self.r = r
        self.scaling = (alpha if alpha is not None else r) / r
        self.lora_A = nn.Parameter(torch.zeros(r, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta(self):
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x):
        return F.linear(x, self.weight + self.delta(), self.bias)


class LoRAConv2d(nn.Conv2d):
    def __init__(self, *args, r=4, alpha=None, **kw):
        super().__init__(*args, **kw)
        if r <= 0:
            raise ValueError(f"LoRA rank must be > 0, got {r}")
        self.r = r
        self.scaling = (alpha if alpha is not None else r) / r
        fan_in = self.weight[0].numel()
        self.lora_A = nn.Parameter(torch.zeros(r, fan_in))
        self.lora_B = nn.Parameter(torch.zeros(self.out_channels, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta(self):
        return ((self.lora_B @ self.lora_A) * self.scaling).view_as(self.weight)

    def forward(self, x):
        return self._conv_forward(x, self.weight + self.delta(), self.bias)


class MergedLoRALinear(nn.Linear):
    """qkv projection with LoRA on chosen thirds (q and v), parameter names and shapes as
    loralib.MergedLinear (lora_A [r*k, in], lora_B [out/3*k, r]) so reference DAN
    checkpoints load by name. loralib's default lora_alpha is 1, so scaling = 1/r."""

    def __init__(self, in_features, out_features, bias=True, r=4, alpha=1.0,
                 enable=(True, False, True)):
        super().__init__(in_features, out_features, bias=bias)
        self.r = r
        self.enable = list(enable)
        self.scaling = alpha / r
        k = sum(self.enable)
        part = out_features // len(self.enable)
        self.lora_A = nn.Parameter(torch.zeros(r * k, in_features))
        self.lora_B = nn.Parameter(torch.zeros(part * k, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        idx = torch.zeros(out_features, dtype=torch.bool).view(len(self.enable), -1)
        idx[torch.tensor(self.enable), :] = True
        self.register_buffer("lora_ind", idx.view(-1), persistent=False)

    def delta(self):
        k = sum(self.enable)
        part = self.lora_B.shape[0] // k
        blocks = []
        for j in range(k):  # grouped 1x1 conv in loralib == per-group B_j @ A_j
            a = self.lora_A[j * self.r:(j + 1) * self.r]
            b = self.lora_B[j * part:(j + 1) * part]
            blocks.append(b @ a)
        d = torch.zeros_like(self.weight)
        d[self.lora_ind] = torch.cat(blocks, 0)
        return d * self.scaling

    def forward(self, x):
        return F.linear(x, self.weight + self.delta(), self.bias)


LORA_TYPES = (LoRALinear, LoRAConv2d, MergedLoRALinear)


def _match(name: str, patterns: Iterable[str]) -> bool:
    return any(re.search(p, name) for p in patterns or [])


def apply_lora(model: nn.Module, patterns: List[str], r: int, alpha=None) -> List[str]:
    """Wrap every Linear/Conv2d whose module name matches a regex in patterns.
    Returns the wrapped names; raises if a pattern matches nothing (a typo in options)."""
    wrapped = []
    for p in patterns:
        if not any(re.search(p, n) for n, m in model.named_modules()
                   if isinstance(m, (nn.Linear, nn.Conv2d))):
            raise ValueError(f"LoRA pattern {p!r} matches no Linear/Conv2d layer")
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LORA_TYPES) or not _match(name, patterns):
            continue
        if isinstance(mod, nn.Conv2d):
            new = LoRAConv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride,
                             mod.padding, mod.dilation, mod.groups, mod.bias is not None,
                             mod.padding_mode, r=r, alpha=alpha)
        elif isinstance(mod, nn.Linear):
            new = LoRALinear(mod.in_features, mod.out_features, mod.bias is not None, r=r, alpha=alpha)
        else:
            continue
        new = new.to(mod.weight.device)
        with torch.no_grad():
            new.weight.copy_(mod.weight)
            if mod.bias is not None:
                new.bias.copy_(mod.bias)
        _set_module(model, name, new)
        wrapped.append(name)
    return wrapped


def _set_module(model, name, new):
    parent = model
    parts = name.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA delta into its base weight and swap in the plain layer (no run-time
    cost, plain parameter names in the exported graph). Returns the number merged."""
    n = 0
    for name, mod in list(model.named_modules()):
        if isinstance(mod, (LoRAConv2d,)):
            new = nn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride,
                            mod.padding, mod.dilation, mod.groups, mod.bias is not None, mod.padding_mode)
        elif isinstance(mod, (LoRALinear, MergedLoRALinear)):
            new = nn.Linear(mod.in_features, mod.out_features, mod.bias is not None)
        else:
            continue
        new = new.to(mod.weight.device)
        new.weight.copy_(mod.weight + mod.delta())
        if mod.bias is not None:
            new.bias.copy_(mod.bias)
        new.train(mod.training)
        _set_module(model, name, new)
        n += 1
    return n


def set_trainable(model: nn.Module, freeze: List[str] = (), unfreeze: List[str] = (),
                  only: List[str] = None) -> int:
    """Selective parameter update. Start from all trainable (or, with only=[...], from only
    the matching ones), freeze names matching any regex in freeze, then unfreeze names
    matching unfreeze (unfreeze wins, as in the reference config where "lora_" is unfrozen).
    Returns the number of trainable parameters."""
    for name, p in model.named_parameters():
        p.requires_grad = True if only is None else _match(name, only)
        if _match(name, freeze):
            p.requires_grad = False
        if _match(name, unfreeze):
            p.requires_grad = True
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_params(model: nn.Module, trainable_only=False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
