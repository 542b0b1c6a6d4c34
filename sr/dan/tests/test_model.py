import pytest
import torch
import torch.nn.functional as F

from sr.dan.model import DANLite, build_model, grow_groups


@pytest.mark.parametrize("scale", [2, 4])
def test_danlite_shapes_and_size(scale):
    m = DANLite(scale=scale, tile=32)
    sp, fo = m(torch.rand(2, 3, 32, 32))
    assert sp.shape == fo.shape == (2, 3, 32 * scale, 32 * scale)
    assert sum(p.numel() for p in m.parameters()) < 1_000_000
    assert m.macs_per_lr_pixel() > 0


def test_fresh_branch_and_residual_start_at_bicubic():
    m = DANLite(scale=4, tile=16)
    with torch.no_grad():
        m.conv_up.weight.zero_()
    x = torch.rand(1, 3, 16, 16)
    sp, fo = m(x)
    ref = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert (sp - ref).abs().max() < 1e-5
    assert (fo - sp).abs().max() < 1e-6  # zero-initialised spectrum correction


def test_frequency_branch_changes_output_once_trained():
    m = DANLite(scale=2, tile=16)
    with torch.no_grad():
        m.gb_conv_last.weight.normal_(0, 0.1)
    sp, fo = m(torch.rand(1, 3, 16, 16))
    assert (fo - sp).abs().max() > 1e-3


def test_wrong_tile_and_scale_are_clear_errors():
    m = DANLite(scale=2, tile=16)
    with pytest.raises(ValueError, match="16x16 LR tiles"):
        m(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="scale 2, 3 or 4"):
        DANLite(scale=5)
    with pytest.raises(ValueError, match="unknown DANLite options"):
        DANLite(scale=2, widht=3)
    with pytest.raises(ValueError, match="unknown arch"):
        build_model({"arch": "nope"})


def test_grown_network_computes_what_the_smaller_one_did():
    torch.manual_seed(0)
    small = DANLite(scale=2, tile=16, feat=8, groups=2, gb_feat=4, proj=2)
    with torch.no_grad():  # a "trained" network: every weight non-zero, branch switched on
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = grow_groups(small, 4)
    assert big.cfg["groups"] == 4 and len(big.body) == 4 and len(big.gb_block) == 4
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        for a, b in zip(small.eval()(x), big.eval()(x)):
            assert torch.allclose(a, b, atol=1e-6)
    # the added groups train: their last convs get gradients on the first step
    big.train()
    big(x)[1].mean().backward()
    assert big.body[3][-2].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shrink"):
        grow_groups(big, 3)
