"""Reproducible randomness for channels: a seed or a ``torch.Generator`` turned into one
generator per device, and Sionna blocks that draw from it instead of Sionna's global one."""

from __future__ import annotations

import functools

import torch

__all__ = ["RandomSource", "seeded_block"]


class RandomSource:
    """Where a channel draws its randomness from.

    ``RandomSource(None)`` uses the global generators (``torch``'s and Sionna's),
    ``RandomSource(7)`` one generator per device seeded with 7 (CPU and CUDA streams differ; on
    the CPU a seed of 2**32 or more is mixed down to the 32 bits torch's generator keeps), and
    ``RandomSource(generator)`` that generator, on its device only.

    >>> a, b = RandomSource(7), RandomSource(7)
    >>> first = torch.rand(3, generator=a.generator("cpu"))
    >>> torch.equal(first, torch.rand(3, generator=b.generator("cpu")))
    True
    """

    def __init__(self, seed: int | torch.Generator | None = None) -> None:
        if isinstance(seed, bool) or not (seed is None or isinstance(seed, (int, torch.Generator))):
            raise TypeError(
                "generator must be an int seed, a torch.Generator or None; "
                f"got {type(seed).__name__}"
            )
        if isinstance(seed, int) and not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63); got {seed}")
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device | str) -> torch.Generator | None:
        """The generator for tensors on ``device``, or ``None`` for the global one."""
        device = _canonical(torch.device(device))
        if self._seed is None:
            return None
        if isinstance(self._seed, torch.Generator):
            if _canonical(self._seed.device) != device:
                raise ValueError(
                    f"the channel's torch.Generator is on {self._seed.device} but the input is on "
                    f"{device}: pass a generator on the input's device, or an int seed"
                )
            return self._seed
        if device not in self._generators:
            seed = _cpu_seed(self._seed) if device.type == "cpu" else self._seed
            self._generators[device] = torch.Generator(device=device).manual_seed(seed)
        return self._generators[device]


_MASK64 = 2**64 - 1


def _cpu_seed(seed: int) -> int:
    """``seed`` for torch's CPU generator, whose Mersenne twister keeps only the low 32 bits
    (seeds 0 and 2**32 drew the same stream): a seed of 2**32 or more is mixed down to 32 bits
    by splitmix64's finalizer, so that the bits above 32 count too.

    >>> _cpu_seed(7), _cpu_seed(2**32) != _cpu_seed(0)
    (7, True)
    """
    if seed < 2**32:
        return seed
    z = (seed + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z ^ (z >> 32)) & 0xFFFFFFFF


def _canonical(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


@functools.cache
def _seeded_class(cls: type) -> type:
    def torch_rng(self: torch.nn.Module) -> torch.Generator:
        generator = self.__dict__.get("_aiflow_generator")
        return generator if generator is not None else cls.torch_rng.fget(self)

    def __reduce__(self: torch.nn.Module) -> tuple:
        # The class is made here, not importable by name: pickle rebuilds it from ``cls``.
        return _unpickle_seeded, (cls, self.__getstate__())

    return type(cls.__name__, (cls,), {"torch_rng": property(torch_rng), "__reduce__": __reduce__})


def _unpickle_seeded(cls: type, state: dict) -> torch.nn.Module:
    """A seeded ``cls`` block from its pickled ``state`` (its ``__dict__``)."""
    seeded = _seeded_class(cls)
    block = seeded.__new__(seeded)
    block.__setstate__(state)
    return block


def seeded_block(
    cls: type, generator: torch.Generator | None, /, *args, **kwargs
) -> torch.nn.Module:
    """An instance of Sionna block ``cls`` that draws from ``generator`` (``None``: Sionna's own).

    Sionna 2.x blocks draw from ``sionna.phy.config.torch_rng(device)``; this subclass hands
    them the channel's generator instead, so the same seed gives the same output.
    """
    block = _seeded_class(cls)(*args, **kwargs)
    block.__dict__["_aiflow_generator"] = generator
    return block
