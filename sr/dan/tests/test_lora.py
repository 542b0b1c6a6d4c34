import pytest
import torch
from torch import nn

from sr.dan.lora import LoRAConv2d, LoRALinear, apply_lora, merge_lora, set_trainable
from sr.dan.model import DANLite


def _wake(model):
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "lora_B"):
                m.lora_B.normal_(0, 0.1)
        model.gb_conv_last.weight.normal_(0, 0.05)


def test_merged_equals_unmerged():
    torch.manual_seed(0)
    m = DANLite(scale=2, tile=16)
    names = apply_lora(m, [r"^body\.[01]\.\d+$", "^conv_first$"], r=4)
    assert "conv_first" in names and isinstance(m.conv_first, LoRAConv2d)
    _wake(m)
    m.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = m(x)[1]
        n = merge_lora(m)
        after = m(x)[1]
    assert n == len(names)
    assert not any(isinstance(mod, (LoRAConv2d, LoRALinear)) for mod in m.modules())
    assert not any("lora_" in k for k in m.state_dict())
    assert (before - after).abs().max() < 1e-5


def test_linear_lora_merge():
    lin = nn.Sequential(nn.Linear(8, 6))
    apply_lora(lin, ["^0$"], r=2)
    with torch.no_grad():
        lin[0].lora_B.normal_()
    x = torch.randn(3, 8)
    y = lin(x)
    merge_lora(lin)
    assert (lin(x) - y).abs().max() < 1e-5


def test_wrapping_keeps_output_and_names():
    m = DANLite(scale=2, tile=16)
    x = torch.rand(1, 3, 16, 16)
    y = m(x)[1]
    keys = set(m.state_dict())
    apply_lora(m, [r"^body\.0\.0$"], r=2)
    assert (m(x)[1] - y).abs().max() < 1e-6  # B starts at zero
    assert keys <= set(m.state_dict())


def test_freeze_unfreeze_patterns():
    m = DANLite(scale=2, tile=16)
    apply_lora(m, [r"^body\.[01]\.\d+$"], r=4)
    n = set_trainable(m, freeze=[r"^conv_first\.", r"^body\.[01]\."], unfreeze=["lora_"])
    tr = {k for k, p in m.named_parameters() if p.requires_grad}
    assert "body.0.0.lora_A" in tr and "body.0.0.weight" not in tr and "conv_first.weight" not in tr
    assert "body.2.0.weight" in tr and "gb_conv_last.weight" in tr
    assert n == sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_lora_pattern_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match="matches no"):
        apply_lora(DANLite(scale=2, tile=16), ["^no_such_layer$"], r=4)
