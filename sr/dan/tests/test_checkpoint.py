import pytest
import torch

from sr.dan.checkpoint import load_model
from sr.dan.model import DANLite, load_state_strict
from sr.dan.swinir import SwinIRDAN

CFG = dict(arch="danlite", scale=2, tile=16, feat=8, groups=2, convs_per_group=1, gb_feat=4, proj=2, last_kernel=3)


def _save(tmp_path, state, cfg=CFG, name="m.pth"):
    p = tmp_path / name
    torch.save({"model_cfg": cfg, "lora": None, "state": state}, p)
    return str(p)


def test_roundtrip(tmp_path):
    m = DANLite(**{k: v for k, v in CFG.items() if k != "arch"})
    path = _save(tmp_path, m.state_dict())
    m2, _ = load_model(path, expect_scale=2)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(m(x)[1], m2(x)[1])


def test_missing_and_unexpected_keys_are_clear(tmp_path):
    sd = DANLite(**{k: v for k, v in CFG.items() if k != "arch"}).state_dict()
    del sd["conv_first.weight"]
    with pytest.raises(ValueError, match=r"missing key.*conv_first\.weight"):
        load_model(_save(tmp_path, sd))
    sd = DANLite(**{k: v for k, v in CFG.items() if k != "arch"}).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected key.*extra\.weight"):
        load_model(_save(tmp_path, sd))


def test_wrong_scale_and_corrupt_file(tmp_path):
    sd = DANLite(**{k: v for k, v in CFG.items() if k != "arch"}).state_dict()
    with pytest.raises(ValueError, match="x2 model, x4 was asked"):
        load_model(_save(tmp_path, sd), expect_scale=4)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(str(bad))
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "none.pth"))
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a danstream DAN checkpoint"):
        load_model(str(tmp_path / "other.pth"))


def test_swinir_dan_random_init_saved_and_loaded_by_name(tmp_path):
    cfg = dict(scale=2, img_size=16, embed_dim=24, depths=[2, 2], num_heads=[2, 2], gb_feat=8,
               lora_layers=[0, 1], use_lora_block=[0])
    torch.manual_seed(0)
    a = SwinIRDAN(**cfg).eval()
    torch.save(a.state_dict(), tmp_path / "swinir.pth")
    torch.manual_seed(1)
    b = SwinIRDAN(**cfg).eval()
    load_state_strict(b, torch.load(tmp_path / "swinir.pth"), source="swinir.pth")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        oa, ob = a(x), b(x)
    assert torch.equal(oa[0], ob[0]) and torch.equal(oa[1], ob[1])
    assert oa[1].shape == (1, 3, 32, 32)


def test_swinir_dan_reference_parameter_names():
    # SwinIR-M x4 DAN-P as in the reference options (rank 4, LoRA on blocks 0-4 of every group).
    sd = SwinIRDAN().state_dict()
    expect = {
        "conv_first.weight": (180, 3, 3, 3),
        "patch_embed.norm.weight": (180,),
        "layers.0.residual_group.blocks.0.attn.qkv.lora_A": (8, 180),
        "layers.0.residual_group.blocks.0.attn.qkv.lora_B": (360, 4),
        "layers.5.residual_group.blocks.5.attn.qkv.weight": (540, 180),
        "layers.0.residual_group.blocks.1.attn_mask": (144, 64, 64),
        "layers.0.residual_group.blocks.0.attn.relative_position_index": (64, 64),
        "layers.3.conv.weight": (180, 180, 3, 3),
        "conv_before_upsample.0.weight": (64, 180, 3, 3),
        "upsample.2.weight": (256, 64, 3, 3),
        "lora_gb_conv_first.weight": (64, 6, 3, 3),
        "lora_gb_block.5.conv.weight": (32, 180, 1, 1),
        "lora_gb_block.0.fu_blocks.1.0.0.weight": (64, 1, 1, 1),
        "lora_gb_block.0.fu_blocks.1.1.1.running_var": (64,),
        "lora_gb_before_upsample.0.weight": (128, 64, 3, 3),
        "lora_gb_upsample.2.weight": (512, 128, 3, 3),
        "lora_gb_conv_last.weight": (6, 128, 3, 3),
    }
    for k, shape in expect.items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, k
    assert "layers.0.residual_group.blocks.5.attn.qkv.lora_A" not in sd
