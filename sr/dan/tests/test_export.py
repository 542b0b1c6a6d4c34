import json
import os

import numpy as np
import onnx
import pytest
import torch

from sr.dan.export import export_model, make_fixture
from sr.dan.lora import apply_lora
from sr.dan.model import DANLite

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def test_export_merges_lora_and_writes_metadata(tmp_path):
    m = DANLite(scale=4, tile=16, feat=8, groups=1, convs_per_group=1, gb_feat=4, proj=2)
    apply_lora(m, [r"^body\.0\.0$"], r=2)
    path = str(tmp_path / "m.onnx")
    export_model(m, path, "dan-lite-x4", overlap=4)
    g = onnx.load(path)
    onnx.checker.check_model(g)
    meta = {p.key: p.value for p in g.metadata_props}
    for k, v in {"danstream.scale": "4", "danstream.tile": "16", "danstream.overlap": "4",
                 "danstream.input_range": "0,1", "danstream.color_order": "RGB",
                 "danstream.name": "dan-lite-x4", "danstream.version": "1"}.items():
        assert meta[k] == v
    assert "danstream.arch" in meta
    ops = {n.op_type for n in g.graph.node}
    assert "MatMul" in ops and "DFT" not in ops
    assert not any("lora" in i.name for i in g.graph.initializer)
    inp, out = g.graph.input[0], g.graph.output[0]
    assert inp.name == "lr" and out.name == "hr"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 3, 16, 16]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 3, 64, 64]


def test_bad_overlap_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        export_model(DANLite(scale=2, tile=16, feat=8, groups=1), str(tmp_path / "x.onnx"), "x", overlap=16)


def test_fixture_is_reproducible(tmp_path, missing):
    make_fixture(str(tmp_path))
    meta = json.load(open(tmp_path / "dan_fixture.json"))
    x = np.fromfile(tmp_path / "dan_fixture.in.bin", dtype="<f4")
    y = np.fromfile(tmp_path / "dan_fixture.out.bin", dtype="<f4")
    assert x.size == np.prod(meta["input_shape"]) and y.size == np.prod(meta["output_shape"])
    committed = os.path.join(REPO, "sr", "testdata", "dan_fixture.out.bin")
    if not os.path.exists(committed):
        missing(f"{committed} absent: sr/dan/export.py --fixture makes it")
    assert os.path.getsize(os.path.join(REPO, "sr", "testdata", "dan_fixture.onnx")) < 1_000_000
    assert np.abs(np.fromfile(committed, dtype="<f4") - y).max() < 1e-5
