"""Realistic degradation pipeline (issue 16): each operation, seeded reproducibility, the
libx264 round trip, clip generation, x3 networks and their export contract."""
import random
import shutil

import numpy as np
import onnx
import pytest
import torch

from sr.dan import degrade as G
from sr.dan.export import export_model
from sr.dan.model import DANLite, change_scale, _phase_map

OPT = {
    "p_second_order": 0.5,
    "order1": {"blur": {"p": 1.0, "sigma": [0.5, 1.5], "p_aniso": 0.5},
               "resize": {"modes": {"area": 1, "bicubic": 1, "bilinear": 1}},
               "noise": {"p": 1.0, "gauss_sigma": [2, 5], "p_poisson": 0.5, "poisson_scale": [0.05, 0.2], "p_gray": 0.5},
               "jpeg": {"p": 0.5, "quality": [50, 90]}},
    "order2": {"blur": {"p": 0.5, "sigma": [0.2, 0.8]}, "resize": {"modes": ["area"]},
               "noise": {"p": 0.5, "gauss_sigma": [1, 3]}, "jpeg": {"p": 0.5, "quality": [60, 95]}},
}
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _img(h=64, w=64, seed=0):
    r = np.random.default_rng(seed)
    base = r.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8)
    return np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), np.uint8)))


def test_gaussian_kernel_normalised_and_anisotropic():
    k = G.gaussian_kernel(15, 3.0, 0.5, 0.0)
    assert k.shape == (15, 15) and abs(k.sum() - 1) < 1e-9
    assert k[7, :].sum() > 3 * k[:, 7].sum()  # wide along x, narrow along y
    kr = G.gaussian_kernel(15, 3.0, 0.5, np.pi / 2)
    np.testing.assert_allclose(kr, k.T, atol=1e-12)


def test_blur_smooths_and_keeps_mean():
    img = _img()
    out = G.blur(img, {"sigma": [1.5, 1.5], "p_aniso": 1.0}, random.Random(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(np.diff(out.astype(float), axis=1)).mean() < np.abs(np.diff(img.astype(float), axis=1)).mean()
    assert abs(out.mean() - img.mean()) < 2


@pytest.mark.parametrize("mode", G.RESIZE_MODES)
def test_resize_modes(mode):
    out = G.resize(_img(), 16, 8, mode)
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown resize mode"):
        G.resize(_img(), 16, 8, "lanczos9")


def test_noise_gray_is_luma_only_and_poisson_scales_with_level():
    img = np.full((32, 32, 3), 128, np.uint8)
    g = G.noise(img, {"p_gray": 1.0, "gauss_sigma": [5, 5]}, random.Random(0)).astype(int)
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all() and g.std() > 2
    c = G.noise(img, {"p_gray": 0.0, "gauss_sigma": [5, 5]}, random.Random(0)).astype(int)
    assert (c[..., 0] != c[..., 1]).mean() > 0.5  # chroma noise too
    dark = np.full((64, 64, 3), 10, np.uint8)
    p = {"p_gray": 0.0, "p_poisson": 1.0, "poisson_scale": [0.2, 0.2]}
    assert G.noise(dark, p, random.Random(0)).std() < G.noise(img, p, random.Random(0)).std()


def test_jpeg_changes_image_within_reason():
    img = _img(seed=3)
    out = G.jpeg(img, {"quality": [30, 30]}, random.Random(0))
    d = np.abs(out.astype(int) - img.astype(int)).mean()
    assert out.shape == img.shape and 0 < d < 40


def test_frame_plan_is_seeded_and_same_camera_per_clip():
    hr = _img(64, 64, 5)
    a = G.FramePlan(OPT, 4, random.Random(7))
    b = G.FramePlan(OPT, 4, random.Random(7))
    la = [a.apply(hr, random.Random(100 + i)) for i in range(2)]
    lb = [b.apply(hr, random.Random(100 + i)) for i in range(2)]
    for x, y in zip(la, lb):
        assert x.shape == (16, 16, 3)
        np.testing.assert_array_equal(x, y)
    seconds = {G.FramePlan(OPT, 4, random.Random(s)).second for s in range(20)}
    assert seconds == {True, False}  # both orders occur


@needs_ffmpeg
def test_h264_round_trip_is_deterministic_and_lossy():
    frames = [_img(32, 48, s) for s in range(4)]
    args, rate = G.h264_args({"crf": [30, 30], "presets": ["veryfast"]}, random.Random(0))
    assert rate == ("crf", 30) and "-bf" in args and "libx264" in args
    out1, n1 = G.encode_h264(frames, args)
    out2, n2 = G.encode_h264(frames, args)
    assert out1.shape == (4, 32, 48, 3) and n1 == n2 and n1 > 0
    np.testing.assert_array_equal(out1, out2)
    assert np.abs(out1.astype(int) - np.stack(frames).astype(int)).mean() > 1
    br, rate = G.h264_args({"p_bitrate": 1.0, "kbps": [300, 300]}, random.Random(0))
    assert rate == ("kbps", 300.0)
    assert G.encode_h264(frames, br, rate=rate)[0].shape == (4, 32, 48, 3)
    with pytest.raises(ValueError, match="even frame size"):
        G.encode_h264([_img(32, 48)[:31]], args)


@needs_ffmpeg
def test_make_clip_seeded_and_aligned():
    from sr.dan.gen_pairs import make_clip
    photo = np.ascontiguousarray(np.tile(_img(128, 128, 9), (2, 2, 1)))
    dopt = dict(OPT, h264={"p": 1.0, "crf": [24, 24], "presets": ["veryfast"]})
    copt = {"rescale": [0.8, 1.0], "p_static": 0.0}
    lr1, hr1, rec1 = make_clip(photo, 2, 32, 3, dopt, copt, random.Random(11))
    lr2, hr2, rec2 = make_clip(photo, 2, 32, 3, dopt, copt, random.Random(11))
    assert rec1 == rec2 and "h264" in rec1
    assert len(lr1) == 3 and lr1[0].shape == (32, 32, 3) and hr1[0].shape == (64, 64, 3)
    for a, b in zip(lr1 + hr1, lr2 + hr2):
        np.testing.assert_array_equal(a, b)


def test_phase_map_and_change_scale_to_x3():
    assert _phase_map(4, 3) == [[0], [1, 2], [3]]
    m4 = DANLite(scale=4, tile=16, feat=8, groups=2, convs_per_group=1, gb_feat=4, proj=2)
    with torch.no_grad():
        m4.conv_up.weight.normal_(0, 0.05)
        m4.gb_conv_last.weight.normal_(0, 0.05)
    m3 = change_scale(m4, 3)
    assert m3.scale == 3 and m3.conv_up.out_channels == 27 and m3.gb_conv_last.out_channels == 54
    torch.testing.assert_close(m3.body[0][0].weight, m4.body[0][0].weight)
    # x3 phase (0,0) of red = x4 phase (0,0) of red; x3 centre phase = mean of the x4 centre four
    torch.testing.assert_close(m3.conv_up.weight[0], m4.conv_up.weight[0])
    torch.testing.assert_close(m3.conv_up.weight[4], m4.conv_up.weight[[5, 6, 9, 10]].mean(0))
    y = m3(torch.rand(1, 3, 16, 16))[1]
    assert y.shape == (1, 3, 48, 48)


def test_x3_export_contract(tmp_path):
    m = DANLite(scale=3, tile=16, feat=8, groups=1, convs_per_group=1, gb_feat=4, proj=2)
    path = str(tmp_path / "x3.onnx")
    export_model(m, path, "dan-lite-x3-real", overlap=4)
    g = onnx.load(path)
    meta = {p.key: p.value for p in g.metadata_props}
    assert meta["danstream.scale"] == "3" and meta["danstream.tile"] == "16" and meta["danstream.name"] == "dan-lite-x3-real"
    dims = [d.dim_value for d in g.graph.output[0].type.tensor_type.shape.dim[1:]]
    assert dims == [3, 48, 48]
    assert g.graph.input[0].name == "lr" and g.graph.output[0].name == "hr"
    # and the weights read back (sr.dan.onnx2pth) are the network's own
    from sr.dan.onnx2pth import onnx_to_model
    r = onnx_to_model(path)
    assert r.cfg == m.cfg
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(r(x)[1], m.eval()(x)[1])


def test_train_x3_from_x4_on_codec_pairs_then_adapt(tmp_path):
    """change_scale: 3 from an x4 checkpoint, trained on an offline pair file (data.kind
    codec_pairs), and the result is a start point for `mode: adapt` (what
    sr/models/dan_lite_x3_real.pth is for)."""
    import yaml
    from sr.dan import train
    from sr.dan.checkpoint import load_model
    tiny = dict(tile=16, feat=8, groups=2, convs_per_group=1, gb_feat=4, proj=2)
    m4 = DANLite(scale=4, **tiny)
    init = str(tmp_path / "x4.pth")
    torch.save({"model_cfg": m4.cfg, "lora": None, "state": m4.state_dict()}, init)
    d = tmp_path / "pairs"
    d.mkdir()
    r = np.random.default_rng(0)
    np.savez(d / "data.npz", lr=r.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8),
             hr=r.integers(0, 256, (3, 60, 60, 3), dtype=np.uint8))
    tr = {"batch": 2, "max_iters": 2, "budget_min": 5, "print_every": 1, "ckpt_every": 1}
    o = {"name": "x3", "mode": "pretrain", "init": init, "change_scale": 3, "model": {"arch": "danlite", "scale": 3},
         "data": {"kind": "codec_pairs", "dir": str(d)}, "train": tr}
    p = tmp_path / "x3.yml"
    p.write_text(yaml.safe_dump(o))
    assert train.main([str(p), "--out", str(tmp_path / "x3")]) == 0
    m3, _ = load_model(str(tmp_path / "x3" / "final.pth"), expect_scale=3)
    assert m3.scale == 3
    ad = dict(o, name="ad", mode="adapt", init=str(tmp_path / "x3" / "final.pth"), lora={"rank": 2, "layers": [r"^body\.0\.0$"]},
              freeze=[r"^conv_first\.", r"^body\.0\."], unfreeze=["lora_"])
    ad.pop("change_scale")
    p2 = tmp_path / "ad.yml"
    p2.write_text(yaml.safe_dump(ad))
    assert train.main([str(p2), "--out", str(tmp_path / "ad")]) == 0
    o["change_scale"] = 2  # disagrees with model.scale 3
    p.write_text(yaml.safe_dump(o))
    assert train.main([str(p), "--out", str(tmp_path / "bad")]) == 2
