import numpy as np
import cv2

from sr.dan import data as D
from sr.dan import devpack


def test_city100_pack_unpack_gives_identical_x2_training_pairs(tmp_path, monkeypatch):
    """A fake City100 folder (random images, real file layout) survives pack -> unpack bit for bit
    as x2 training pairs, and the EVAL split is not packed."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for sub, suffix in (("HR", "H"), ("LR", "L")):
        (src / "city100_iphonex" / sub).mkdir(parents=True)
        for i in range(1, 101):
            img = rng.integers(0, 256, (18, 26, 3), dtype=np.uint8)  # odd-free size, like 600x840
            cv2.imwrite(str(src / "city100_iphonex" / sub / f"{i:03d}{suffix}.PNG"), img)
    monkeypatch.setattr(D, "DATA_ROOT", str(src))
    pack = tmp_path / "pack"
    assert devpack.pack_city100(str(pack)) == len(D.city100_ids("train"))
    assert not (pack / "HR" / "001H.webp").exists(), "an EVAL pair was packed"
    root = tmp_path / "unpacked"
    assert devpack.unpack(str(pack), str(root)) == 2 * len(D.city100_ids("train"))
    for i in D.city100_ids("train"):
        a, b = D.city100_pair(i, 2, root=str(src)), D.city100_pair(i, 2, root=str(root))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), i
