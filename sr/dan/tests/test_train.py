import os

import pytest
import torch
import yaml

from sr.dan import train
from sr.dan.checkpoint import load_model
from sr.dan.export import export_model

TINY = {"arch": "danlite", "scale": 2, "tile": 16, "feat": 8, "groups": 2, "convs_per_group": 1,
        "gb_feat": 4, "proj": 2, "last_kernel": 3}


def _opts(tmp_path, name, **kw):
    o = {"name": name, "mode": "pretrain", "model": TINY,
         "data": {"kind": "synthetic", "degradation": {"p_blur": 0.5, "p_noise": 0.5, "p_jpeg": 0.5}},
         "train": {"batch": 2, "max_iters": 3, "budget_min": 5, "print_every": 1, "ckpt_every": 2, "lr": 1e-3}}
    o.update(kw)
    p = tmp_path / f"{name}.yml"
    p.write_text(yaml.safe_dump(o))
    return str(p)


def test_pretrain_resume_adapt_export(tmp_path, capsys):
    out = str(tmp_path / "pre")
    assert train.main([_opts(tmp_path, "pre"), "--out", out]) == 0
    log = capsys.readouterr().out
    assert "loss" in log and "ETA" in log
    assert train.main([_opts(tmp_path, "pre", train={"batch": 2, "max_iters": 4, "budget_min": 5}),
                       "--out", out, "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out
    ad = _opts(tmp_path, "ad", mode="adapt", init=os.path.join(out, "final.pth"), model={"arch": "danlite", "scale": 2},
               lora={"rank": 2, "layers": [r"^body\.0\.0$"]}, freeze=[r"^conv_first\.", r"^body\.0\."],
               unfreeze=["lora_"])
    assert train.main([ad, "--out", str(tmp_path / "ad")]) == 0
    model, ck = load_model(str(tmp_path / "ad" / "final.pth"), expect_scale=2)
    assert ck["lora"]["rank"] == 2 and 0 < ck["trainable"] < sum(p.numel() for p in model.parameters())
    export_model(model, str(tmp_path / "ad.onnx"), "t")


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert train.main([_opts(tmp_path, "x", mode="fly")]) == 2
    assert "mode must be" in capsys.readouterr().err
    assert train.main([_opts(tmp_path, "y", mode="adapt")]) == 2
    assert "needs 'init'" in capsys.readouterr().err
    assert train.main([_opts(tmp_path, "z", model=dict(TINY, scale=5))]) == 2
    assert "scale" in capsys.readouterr().err


def _wrap_batches(monkeypatch, change):
    """Make train's data sources pass every batch (lr, hr) through change(lr, hr)."""
    real = train.make_data

    class Wrapped:
        def __init__(self, ds):
            self.ds = ds

        def batch(self, n, **kw):
            return change(*self.ds.batch(n, **kw))

    monkeypatch.setattr(train, "make_data", lambda *a: Wrapped(real(*a)))


def test_diverged_loss_stops_the_run_without_a_final_checkpoint(tmp_path, capsys, monkeypatch):
    _wrap_batches(monkeypatch, lambda lr, hr: (lr, hr * float("nan")))
    out = tmp_path / "nan"
    assert train.main([_opts(tmp_path, "nan"), "--out", str(out)]) == 3
    assert "diverged" in capsys.readouterr().err
    assert not (out / "final.pth").exists()


def test_loader_workers_draw_distinct_patches_and_train(tmp_path, capsys):
    from sr.dan import data as D
    ds = D.SyntheticPatches(2, 16, {}, seed=5)
    nxt = train.batch_source(ds, 4, 5, 2, False)
    a, b = nxt(), nxt()
    assert a[0].shape == (4, 3, 16, 16) and a[1].shape == (4, 3, 32, 32)
    assert not torch.equal(a[1], b[1]), "two workers produced the same batch: their random streams are not split"
    out = str(tmp_path / "w")
    assert train.main([_opts(tmp_path, "w"), "--out", out, "--workers", "2"]) == 0
    assert "workers=2" in capsys.readouterr().out
    load_model(os.path.join(out, "final.pth"), expect_scale=2)


def test_photo_folder_override(tmp_path, monkeypatch):
    import cv2
    import numpy as np
    from sr.dan import data as D
    monkeypatch.setenv("DANSTREAM_PHOTOS", str(tmp_path))
    with pytest.raises(RuntimeError, match="no .jpg or .png"):
        D.photo_paths()
    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40, 3), 128, np.uint8))
    assert D.photo_paths() == [str(tmp_path / "a.png")]


def test_a_stalled_loader_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import time

    def stall(lr, hr):
        time.sleep(6)
        return lr, hr

    _wrap_batches(monkeypatch, stall)
    monkeypatch.setattr(train, "LOADER_TIMEOUT_S", 1)
    assert train.main([_opts(tmp_path, "stall"), "--out", str(tmp_path / "s"), "--workers", "1"]) == 2
    assert "data loader" in capsys.readouterr().err


def test_an_adapted_checkpoint_starts_a_further_adaptation_stage(tmp_path):
    pre = str(tmp_path / "pre")
    assert train.main([_opts(tmp_path, "pre"), "--out", pre]) == 0
    lora = {"rank": 2, "layers": [r"^body\.0\.0$"]}
    first = _opts(tmp_path, "a1", mode="adapt", init=os.path.join(pre, "final.pth"), model={"arch": "danlite", "scale": 2},
                  lora=lora, freeze=[r"^conv_first\.", r"^body\.0\."], unfreeze=["lora_"])
    assert train.main([first, "--out", str(tmp_path / "a1")]) == 0
    a1 = os.path.join(str(tmp_path / "a1"), "final.pth")
    m1, _ = load_model(a1)
    m2, *_ = train.build({"mode": "adapt", "init": a1, "model": {"scale": 2}})  # merged, no new LoRA
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m1.eval()(x)[1], m2.eval()(x)[1], atol=1e-5)
    second = _opts(tmp_path, "a2", mode="adapt", init=a1, model={"arch": "danlite", "scale": 2}, lora=lora,
                   freeze=[r"^conv_first\.", r"^body\.0\."], unfreeze=["lora_"])
    assert train.main([second, "--out", str(tmp_path / "a2")]) == 0


def test_grow_and_weight_averaging_stage(tmp_path):
    pre = str(tmp_path / "pre")
    assert train.main([_opts(tmp_path, "pre"), "--out", pre]) == 0
    g = _opts(tmp_path, "g", init=os.path.join(pre, "final.pth"), model={"arch": "danlite", "scale": 2},
              grow={"groups": 3}, train={"batch": 2, "max_iters": 4, "budget_min": 5, "ckpt_every": 2, "ema": 0.9})
    out = str(tmp_path / "g")
    assert train.main([g, "--out", out]) == 0
    last = torch.load(os.path.join(out, "last.pth"))
    final = torch.load(os.path.join(out, "final.pth"))
    assert final["model_cfg"]["groups"] == 3 and final["ema_decay"] == 0.9 and "ema" not in final
    # final.pth serves the average, last.pth keeps the raw weights and the average for a resume
    k = "body.2.0.weight"
    assert torch.equal(final["state"][k], last["ema"][k]) and not torch.equal(final["state"][k], last["state"][k])
    model, _ = load_model(os.path.join(out, "final.pth"))
    assert len(model.body) == 3
    assert train.main([_opts(tmp_path, "g", init=os.path.join(pre, "final.pth"), model={"arch": "danlite", "scale": 2},
                             grow={"groups": 3}, train={"batch": 2, "max_iters": 6, "budget_min": 5, "ema": 0.9}),
                       "--out", out, "--resume"]) == 0


def test_grow_without_init_and_a_bad_average_are_clear_errors(tmp_path, capsys):
    assert train.main([_opts(tmp_path, "g", grow={"groups": 3}), "--out", str(tmp_path / "g")]) == 2
    assert "grow needs 'init'" in capsys.readouterr().err
    bad = _opts(tmp_path, "e", train={"batch": 2, "max_iters": 2, "budget_min": 5, "ema": 1.5})
    assert train.main([bad, "--out", str(tmp_path / "e")]) == 2
    assert "train.ema" in capsys.readouterr().err


def test_l2_pixel_loss_trains_on_the_squared_error_and_a_bad_loss_name_is_a_clear_error(tmp_path, capsys):
    first = {}
    for kind in ("l1", "l2"):
        o = _opts(tmp_path, kind, train={"batch": 2, "max_iters": 1, "budget_min": 5, "print_every": 1,
                                         "seed": 5, "pixel_loss": kind, "freq_weight": 0})
        assert train.main([o, "--out", str(tmp_path / kind)]) == 0
        assert (tmp_path / kind / "final.pth").exists()
        line = [l for l in capsys.readouterr().out.splitlines() if " it 1 loss " in l][0]
        first[kind] = float(line.split(" loss ")[1].split()[0])
    # same seed, same first batch and weights: pixel errors are below 1, so their square is smaller
    assert 0 < first["l2"] < first["l1"]
    bad = _opts(tmp_path, "l3", train={"batch": 2, "max_iters": 2, "budget_min": 5, "pixel_loss": "l3"})
    assert train.main([bad, "--out", str(tmp_path / "l3")]) == 2
    assert "train.pixel_loss" in capsys.readouterr().err


def test_max_iters_flag_replaces_the_wall_time_budget(tmp_path, capsys):
    # A budget of ~0 s would stop the run at once; --max-iters makes the iteration count rule.
    o = _opts(tmp_path, "mi", train={"batch": 2, "budget_min": 1e-9, "print_every": 1, "ckpt_every": 100})
    assert train.main([o, "--out", str(tmp_path / "mi"), "--max-iters", "3"]) == 0
    ck = torch.load(str(tmp_path / "mi" / "final.pth"), map_location="cpu")
    assert ck["iter"] == 3
    assert train.main([o, "--out", str(tmp_path / "mi0"), "--max-iters", "0"]) == 2
    assert "--max-iters" in capsys.readouterr().err


def test_non_positive_budget_is_a_clear_error(tmp_path, capsys):
    for b in (0, -1):
        o = _opts(tmp_path, f"b{b}", train={"batch": 2, "max_iters": 2, "budget_min": b})
        assert train.main([o, "--out", str(tmp_path / f"b{b}")]) == 2
        assert "budget_min must be positive" in capsys.readouterr().err
