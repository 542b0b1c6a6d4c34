import pytest
import torch

from sr.dan.dft import DFT2


@pytest.mark.parametrize("h,w", [(64, 64), (16, 24), (7, 5)])
def test_matrix_dft_equals_torch_fft(h, w):
    torch.manual_seed(0)
    d = DFT2(h, w)
    d.force_matmul = True
    x = torch.randn(2, 3, h, w)
    ref = torch.fft.fft2(x, norm="ortho")
    ref = torch.stack((ref.real, ref.imag), 2).reshape(2, 6, h, w)
    assert (d(x) - ref).abs().max() < 1e-5


@pytest.mark.parametrize("h,w", [(64, 64), (16, 24)])
def test_matrix_inverse_equals_torch_ifft(h, w):
    torch.manual_seed(1)
    d = DFT2(h, w)
    d.force_matmul = True
    z = torch.randn(2, 8, h, w)
    zc = z.view(2, 4, 2, h, w)
    ref = torch.fft.ifft2(torch.complex(zc[:, :, 0], zc[:, :, 1]), norm="ortho").real
    assert (d.inverse(z) - ref).abs().max() < 1e-5
    x = torch.randn(1, 2, h, w)
    assert (d.inverse(d(x)) - x).abs().max() < 1e-5


def test_eager_path_equals_matmul_path():
    d = DFT2(32)
    x = torch.randn(1, 4, 32, 32)
    fast, fast_inv = d(x), d.inverse(torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(2)))
    d.force_matmul = True
    assert (d(x) - fast).abs().max() < 1e-5
    assert (d.inverse(torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(2))) - fast_inv).abs().max() < 1e-5


def test_wrong_size_is_a_clear_error():
    with pytest.raises(ValueError, match="built for 16x16"):
        DFT2(16)(torch.zeros(1, 1, 16, 17))
