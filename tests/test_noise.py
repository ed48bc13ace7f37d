"""Counter-based Gaussian noise: the C++ kernel against its float32 specification bit for bit,
the specification against float64 Box-Muller on the same random words, and the statistics."""

import math

import pytest
import scipy.stats
import torch

from aiflow_comm.channel import noise
from aiflow_comm.channel.noise import counter_normal_reference, normal_bits, standard_normal
from aiflow_comm.kernels.reference import hash32

native = pytest.mark.skipif(noise._NATIVE is None, reason="aiflow_comm._C is not built")


@native
@pytest.mark.parametrize("numel", [1, 2, 7, 1025, 100_001])
@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_kernel_equals_the_specification_bit_for_bit(numel: int, seed: int) -> None:
    out = torch.empty(numel)
    noise._NATIVE.counter_normal_cpu(out, seed)
    assert torch.equal(out, counter_normal_reference(numel, seed))


@native
def test_kernel_output_does_not_depend_on_the_thread_count() -> None:
    threads = torch.get_num_threads()
    draws = []
    for count in (1, 2, 3):
        torch.set_num_threads(count)
        out = torch.empty(300_001)
        noise._NATIVE.counter_normal_cpu(out, 9)
        draws.append(out)
    torch.set_num_threads(threads)
    assert all(torch.equal(draws[0], d) for d in draws[1:])


@native
def test_kernel_rejects_bad_outputs_and_seeds() -> None:
    with pytest.raises(RuntimeError, match="float32"):
        noise._NATIVE.counter_normal_cpu(torch.empty(4, dtype=torch.float64), 0)
    with pytest.raises(RuntimeError, match="contiguous"):
        noise._NATIVE.counter_normal_cpu(torch.empty(4, 4).t(), 0)
    with pytest.raises(RuntimeError, match="seed"):
        noise._NATIVE.counter_normal_cpu(torch.empty(4), 2**32)


def test_specification_is_box_muller_on_its_random_words() -> None:
    """float64 Box-Muller with libm's log, sin and cos, from the same two words per pair."""
    numel, seed = 200_000, 5
    index = torch.arange(numel // 2, dtype=torch.int64) * 2
    a, b = normal_bits(seed, index), normal_bits(seed, index + 1)
    u = ((a.float() + 1) * 2.0**-32).double()  # u is on float32's grid, by the specification
    radius = torch.sqrt(-2 * torch.log(u))
    fraction = (b & 0x3FFFFFFF).double() * 2.0**-30
    theta = ((b >> 30).double() + fraction) * (math.pi / 2)
    exact = torch.stack((radius * torch.cos(theta), radius * torch.sin(theta)), -1).reshape(-1)
    error = (counter_normal_reference(numel, seed).double() - exact).abs()
    assert float((error / (1 + exact.abs())).max()) < 2e-6


def test_samples_are_standard_normal() -> None:
    z = counter_normal_reference(1 << 20, seed=11).double()
    n = z.numel()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float(z.pow(4).mean()) - 3) < 5 * math.sqrt(96 / n)  # var(z^4) = 105 - 9
    assert scipy.stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    for threshold in (2.0, 3.0, 4.0):
        p = 2 * scipy.stats.norm.sf(threshold)
        observed = float((z.abs() > threshold).double().mean())
        assert abs(observed - p) < 5 * math.sqrt(p * (1 - p) / n)
    pairs = z.reshape(-1, 2)
    for u, v in ((pairs[:, 0], pairs[:, 1]), (z[:-1], z[1:]), (pairs[:-1, 0], pairs[1:, 0])):
        assert abs(float((u * v).mean())) < 5 / math.sqrt(u.numel())


def test_standard_normal_is_reproducible_per_generator() -> None:
    def draw(seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return standard_normal((3, 500), dtype=dtype, generator=torch.Generator().manual_seed(seed))

    first = draw(1)
    assert first.shape == (3, 500) and first.dtype == torch.float32
    assert torch.equal(first, draw(1)) and not torch.equal(first, draw(2))
    assert draw(1, torch.float64).dtype == torch.float64
    assert not torch.equal(first, standard_normal((3, 500)))  # the global generator moves on


def _unhash32(y: int) -> int:
    """The inverse of the lowbias32 hash (its xor-shifts and odd multiplies are invertible)."""
    y ^= y >> 16
    y = (y * pow(0x846CA68B, -1, 2**32)) & 0xFFFFFFFF
    y ^= (y >> 15) ^ (y >> 30)
    y = (y * pow(0x7FEB352D, -1, 2**32)) & 0xFFFFFFFF
    return y ^ (y >> 16)


def test_two_seeds_do_not_draw_the_same_values_permuted() -> None:
    """Seeds whose first keys H(seed) differ by XOR 2: keyed by that XOR alone, word i of one
    draw would be word i ^ 2 of the other, and the two draws would hold the same values."""
    first = 12345
    second = _unhash32(int(hash32(torch.tensor(first))) ^ 2)
    assert int(hash32(torch.tensor(second))) == int(hash32(torch.tensor(first))) ^ 2
    a, b = counter_normal_reference(8192, first), counter_normal_reference(8192, second)
    shared = len(set(a.tolist()) & set(b.tolist()))
    assert shared < 8, shared  # independent float32 normals: about 8192**2 / 2**32 < 1 in common
    index = torch.arange(64, dtype=torch.int64)
    words = normal_bits(first, index), normal_bits(second, index)
    assert len(set(words[0].tolist()) & set(words[1].tolist())) == 0
