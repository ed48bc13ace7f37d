"""``SplitLink``: the codec and the wireless link at a cut, as one module for training and use."""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch
from torch import nn

from aiflow_comm.channel.analog import AnalogLink
from aiflow_comm.channel.digital import DigitalLink, quantized_bit_flip_ste
from aiflow_comm.channel.randomness import RandomSource
from aiflow_comm.codec import QuantizedTensor, WireFormatError, fake_quantize, quantize
from aiflow_comm.kernels.fused_layers import (
    dequantize_project_conv1x1,
    dequantize_project_linear,
    is_pointwise_conv,
    project_quantize_conv1x1,
    project_quantize_linear,
)
from aiflow_comm.kernels.layout import check_group_size, check_quant_args, check_symmetric
from aiflow_comm.split.points import evaluating

__all__ = ["ON_ERROR", "SplitLink"]

ON_ERROR = ("erase", "keep")

SnrSetting = float | tuple[float, float] | None


def _check_snr_setting(snr_db: SnrSetting) -> SnrSetting:
    if snr_db is None:
        return None
    if isinstance(snr_db, tuple | list) and len(snr_db) == 2:
        if not all(_is_number(v) or _is_real_scalar_tensor(v) for v in snr_db):
            raise TypeError(f"snr_db range must be two numbers (low, high); got {snr_db!r}")
        low, high = (float(v) for v in snr_db)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"snr_db range must be finite with low <= high; got {snr_db}")
        return (low, high)
    if _is_number(snr_db):
        return _finite(snr_db)
    raise TypeError(f"snr_db must be a number, a (low, high) pair or None; got {snr_db!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_real_scalar_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex()


def _fusable(module: nn.Module | None) -> str | None:
    """``"linear"`` or ``"conv1x1"`` where the fused ops compute exactly what ``module`` does: an
    ``nn.Linear`` or pointwise ``nn.Conv2d`` running the stock ``forward`` (a subclass that only
    renames it, such as MultiheadAttention's projection, qualifies; a parametrized weight is
    read through its property) that no forward hook, its own or a global one, changes. A
    subclass's own ``forward``, a hook, or the old ``spectral_norm``/``weight_norm`` (a pre-hook
    that recomputes the weight) must run as is."""
    hooks = torch.nn.modules.module
    if module is None or module._forward_hooks or module._forward_pre_hooks:
        return None
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return None
    kind = type(module)
    if isinstance(module, nn.Linear) and kind.forward is nn.Linear.forward:
        return "linear"
    stock_conv = kind.forward is nn.Conv2d.forward and kind._conv_forward is nn.Conv2d._conv_forward
    if isinstance(module, nn.Conv2d) and stock_conv and is_pointwise_conv(module):
        return "conv1x1"
    return None


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """What a linear or conv layer returns on ``device`` under autocast; ``None`` when off."""
    on = torch.is_autocast_enabled(device.type)
    return torch.get_autocast_dtype(device.type) if on else None


def _as_autocast(y: torch.Tensor) -> torch.Tensor:
    """``y`` in autocast's dtype where autocast is on for its device, else as it is."""
    dtype = _autocast_dtype(y.device)
    return y if dtype is None else y.to(dtype)


def _as_autocast_codes(q: QuantizedTensor) -> QuantizedTensor:
    """``q`` recorded as of autocast's dtype where autocast is on for its device (the dtype the
    encoder layer itself would have returned), else as it is."""
    dtype = _autocast_dtype(q.codes.device)
    return q if dtype is None else dataclasses.replace(q, dtype=dtype)


def _finite(snr_db: numbers.Real) -> float:
    """``snr_db`` as a float, or ``ValueError`` for NaN or infinity."""
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite; got {snr_db}")
    return float(snr_db)


def _check_features(features: object) -> None:
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise TypeError("features must be a floating-point tensor")
    if features.dim() < 2:
        raise ValueError(
            f"features must be (batch, ...) with at least 2 dimensions; got shape "
            f"{tuple(features.shape)}"
        )


def _check_example(features: object) -> None:
    """Raise unless ``features`` holds an example to measure (its first is what is measured)."""
    _check_features(features)
    if features.shape[0] == 0:
        raise ValueError(
            f"features must hold at least one example; got shape {tuple(features.shape)}"
        )


class SplitLink(nn.Module):
    """What happens to features between a model's head and tail: compress, send, receive.

    ``features -> encoder -> quantizer -> link -> dequantizer -> decoder``. Every stage is
    optional: ``encoder``/``decoder`` are learned modules (for example a projection that
    reduces channels and its expansion), ``bits`` (2, 4, 8, or ``None`` for no quantization)
    sets the quantizer, and ``link`` is an :class:`~aiflow_comm.channel.AnalogLink`, a
    :class:`~aiflow_comm.channel.DigitalLink`, or ``None`` for a perfect link.

    * **Training mode** (differentiable): fake quantization (straight-through); over an analog
      link, the channel itself; over a digital link, a surrogate: code bits flipped at the
      link's closed-form raw bit error rate (:func:`~aiflow_comm.channel.quantized_bit_flip_ste`).
    * **Eval mode** (what a deployment does): real ``quantize`` -> ``to_bytes()`` -> link ->
      ``from_bytes()`` -> dequantize. Over a digital link each example is its own packet. With
      ``on_error="erase"`` (default) a packet whose CRC fails is erased (decoded as zeros) and
      counted in ``erasures``; with ``on_error="keep"`` only the packed codes cross the link
      (header and scales are assumed delivered intact, as by a robust control channel) and
      the bit errors reach the features, which is what the training surrogate models. With
      ``link=None`` the output equals ``decode(encode(features))`` bit for bit.

    Quantization groups run along the last dimension, or along the channels (dimension 1,
    sent channels-last) when ``encoder`` is an ``nn.Conv2d``: the encoder's output features.
    Where the encoder is an ``nn.Linear`` or a pointwise (1x1) ``nn.Conv2d``, the bytes are
    made by the fused :func:`~aiflow_comm.kernels.project_quantize` (the float projection is
    never held whole), and where the decoder is one, the edge runs the fused
    :func:`~aiflow_comm.kernels.dequantize_project`; training keeps the plain modules, with
    fake quantization, for autograd.

    ``snr_db`` is a fixed Es/N0 in dB, or a ``(low, high)`` range from which each example draws
    its own SNR uniformly at every call; ``forward(features, snr_db=...)`` overrides it.

    Args:
        bits: 2, 4 or 8 bits per value, or ``None`` (send floats; analog links or no link).
        group_size: values per quantization scale, along the last dimension.
        encoder, decoder: optional modules before quantization and after dequantization.
        link: ``AnalogLink``, ``DigitalLink`` or ``None``.
        snr_db: number, ``(low, high)`` or ``None`` (needed when a link is given).
        symmetric: symmetric (default) or asymmetric (zero point) quantization.
        on_error: ``"erase"`` or ``"keep"``: what eval mode does with bit errors (above).
        generator: int seed or ``torch.Generator`` for SNR draws and surrogate bit flips.

    >>> link = SplitLink(bits=4, group_size=32).eval()
    >>> f = torch.randn(2, 64)
    >>> torch.equal(link(f), link.decode(link.encode(f)))
    True
    >>> link.payload_bits(f)  # per example: wire header, codes, scales and CRC
    608
    """

    def __init__(
        self,
        bits: int | None = 8,
        group_size: int = 128,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        link: nn.Module | None = None,
        snr_db: SnrSetting = None,
        *,
        symmetric: bool = True,
        on_error: str = "erase",
        generator: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if bits is not None:
            check_quant_args(bits, group_size)
        else:  # unused without bits, but shown by repr and used once bits are set
            check_group_size(group_size)
        if link is not None and not isinstance(link, AnalogLink | DigitalLink):
            raise TypeError(
                f"link must be an AnalogLink, a DigitalLink or None; got {type(link).__name__}"
            )
        if isinstance(link, DigitalLink) and bits is None:
            raise ValueError("a DigitalLink sends quantized codes: give bits (2, 4 or 8)")
        for name, module in (("encoder", encoder), ("decoder", decoder)):
            if module is not None and not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be an nn.Module or None; got {type(module).__name__}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
        self.snr_db = _check_snr_setting(snr_db)
        if link is not None and self.snr_db is None:
            raise ValueError("a link needs snr_db: a number or a (low, high) range in dB")
        self.bits = bits
        self.group_size = group_size
        self.symmetric = check_symmetric(symmetric)
        self.on_error = on_error
        self.encoder = encoder
        self.decoder = decoder
        self.link = link
        self.random = RandomSource(generator)
        self.erasures = 0
        self.group_dim = 1 if isinstance(encoder, nn.Conv2d) else -1

    def draw_snr_db(
        self, batch: int, device: torch.device, snr_db: float | torch.Tensor | None = None
    ) -> float | torch.Tensor:
        """Each example's SNR: ``snr_db`` if given (a number, or a tensor of one value or one
        per example), else the setting (fixed, or drawn)."""
        if snr_db is not None:
            return self._checked_snr(snr_db, batch)
        if self.snr_db is None:
            raise ValueError("no SNR: set snr_db in the constructor or pass it to forward")
        if isinstance(self.snr_db, float):
            return self.snr_db
        low, high = self.snr_db
        uniform = torch.rand(batch, generator=self.random.generator(device), device=device)
        return low + (high - low) * uniform

    def _checked_snr(self, snr_db: object, batch: int) -> float | torch.Tensor:
        """``forward``'s ``snr_db``, or a ``TypeError``/``ValueError`` that names it. A digital
        link sends example by example, so it needs one value or exactly one per example."""
        if _is_number(snr_db):
            return _finite(snr_db)
        if not isinstance(snr_db, torch.Tensor) or snr_db.is_complex():
            raise TypeError(
                f"forward's snr_db must be a number or a real tensor (one value per example); "
                f"got {snr_db!r}"
            )
        if isinstance(self.link, DigitalLink) and snr_db.numel() not in (1, batch):
            raise ValueError(
                f"snr_db must hold one value or one per example ({batch}); got shape "
                f"{tuple(snr_db.shape)}"
            )
        if snr_db.is_cpu and not bool(torch.isfinite(snr_db).all()):  # no device sync
            raise ValueError(f"snr_db must be finite; got {snr_db.tolist()}")
        return snr_db.reshape(()) if snr_db.numel() == 1 else snr_db  # one value for all

    # The byte paths run eagerly under torch.compile (a graph break): bytes are host data.
    @torch.compiler.disable
    def encode(self, features: torch.Tensor) -> bytes:
        """Deployment, device side: encoder, quantization and the wire format's bytes."""
        return self._quantized(features).to_bytes()

    @torch.compiler.disable
    def decode(self, payload: bytes | bytearray | memoryview) -> torch.Tensor:
        """Deployment, edge side: bytes back to features (dequantize, then the decoder)."""
        return self._decoded_codes(QuantizedTensor.from_bytes(payload))

    def payload_bits(self, features: torch.Tensor) -> int:
        """Bits one example of ``features`` takes on the link: the wire message, or with a
        digital link and ``on_error="keep"`` the packed codes alone (what crosses it; the header
        and scales are assumed delivered apart), float32 values without ``bits``. The encoder
        runs in eval mode (a BatchNorm's statistics stay as they are), whatever the mode."""
        _check_example(features)
        with evaluating(self):
            if self.bits is None:
                return 32 * self._encoded(features[:1]).numel()
            if self.on_error == "keep" and isinstance(self.link, DigitalLink):
                return 8 * self._quantized(features[:1]).codes.numel()
            return 8 * len(self.encode(features[:1]))

    def channel_uses(self, features: torch.Tensor) -> int | None:
        """Complex channel uses per example over the link (``None`` without a link); the
        encoder runs in eval mode, as in :meth:`payload_bits`."""
        _check_example(features)
        if self.link is None:
            return None
        if isinstance(self.link, DigitalLink):
            return self.link.channel_uses(self.payload_bits(features))
        with evaluating(self):
            return self.link.channel_uses(self._encoded(features[:1]))

    def forward(
        self, features: torch.Tensor, snr_db: float | torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_features(features)
        if not self.training and self.link is None and self.bits is not None:
            return self.decode(self.encode(features))
        snr = None
        if self.link is not None:
            snr = self.draw_snr_db(features.shape[0], features.device, snr_db)
        if self.training:
            z = self._train_path(self._encoded(features), snr)
        elif isinstance(self.link, DigitalLink):
            return self._send_packets(features, snr)
        else:
            z = self._encoded(features) if self.bits is None else self._sent_codes(features)
            if self.link is not None:
                z = self.link(z, snr)
        return self._decoded(z)

    def _train_path(self, z: torch.Tensor, snr: float | torch.Tensor | None) -> torch.Tensor:
        if isinstance(self.link, DigitalLink):
            try:
                p = self.link.surrogate_error_rate(snr)
            except NotImplementedError as error:
                raise NotImplementedError(
                    "SplitLink trains over a DigitalLink by flipping code bits at the link's "
                    f"closed-form error rate, and this one has none ({error}). Train over an "
                    "AWGN, Rayleigh or Rician DigitalLink (or an OFDMChannel with "
                    "normalize_channel=False, csi='perfect', profiles A-C) or an AnalogLink, "
                    "and evaluate over this link (eval mode sends the real packets)."
                ) from error
            if isinstance(p, torch.Tensor):
                p = p.reshape(p.shape + (1,) * (z.dim() - p.dim()))
            return quantized_bit_flip_ste(
                z.movedim(self.group_dim, -1), self.bits, self.group_size, p=p,
                symmetric=self.symmetric, generator=self.random.generator(z.device),
            ).movedim(-1, self.group_dim)  # fmt: skip
        if self.bits is not None:
            grouped = z.movedim(self.group_dim, -1)
            z = fake_quantize(grouped, self.bits, self.group_size, symmetric=self.symmetric)
            z = z.movedim(-1, self.group_dim)
        return z if self.link is None else self.link(z, snr)

    @torch.compiler.disable
    def _send_packets(self, features: torch.Tensor, snr: float | torch.Tensor) -> torch.Tensor:
        """Each example as its own packet, received per ``on_error`` and decoded as
        :meth:`decode` does (the decoder fused with dequantization where it can be)."""
        if features.shape[0] == 0:  # no packet to send
            return self._decoded_codes(self._quantized(features))
        received = []
        if isinstance(snr, torch.Tensor):
            snr = snr.reshape(-1).expand(features.shape[0])  # one value or one per example
        for i in range(features.shape[0]):
            snr_i = snr[i] if isinstance(snr, torch.Tensor) else snr
            received.append(self._receive(self._quantized(features[i : i + 1]), snr_i))
        return torch.cat(received)

    def _receive(self, q: QuantizedTensor, snr_db: float | torch.Tensor) -> torch.Tensor:
        """One example's packet over the digital link, received per ``on_error`` and decoded;
        an erased packet decodes as zero features."""
        if self.on_error == "keep":
            sent = q.codes.cpu().numpy().tobytes()
            codes, _ = self.link.send_bytes(sent, snr_db, device=q.device)
            q.codes.view(-1).copy_(torch.frombuffer(bytearray(codes), dtype=torch.uint8))
            return self._decoded_codes(q)
        payload, _ = self.link.send_bytes(q.to_bytes(), snr_db, device=q.device)
        try:
            return self._decoded_codes(QuantizedTensor.from_bytes(payload).to(q.device))
        except WireFormatError:
            self.erasures += 1
            zeros = torch.zeros(q.shape, dtype=q.dtype, device=q.device)
            with torch.no_grad():
                return self._decoded(zeros.movedim(-1, self.group_dim))

    def _encoded(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features)
        if self.group_dim == 1 and features.dim() != 4:  # Conv2d would take 3-D as unbatched
            raise ValueError(
                "a Conv2d encoder takes (batch, channels, height, width) features; got shape "
                f"{tuple(features.shape)}"
            )
        return features if self.encoder is None else self.encoder(features)

    def _decoded(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.decoder is None else self.decoder(z)

    def _dequantized(self, q: QuantizedTensor) -> torch.Tensor:
        """Decoded codes in the encoder's layout (channels moved back for a conv encoder)."""
        return q.dequantize().movedim(-1, self.group_dim)

    def _sent_codes(self, features: torch.Tensor) -> torch.Tensor:
        """What the quantizer lets through: the decoded codes, in the encoder's layout."""
        return self._dequantized(self._quantized(features))

    def _decoded_codes(self, q: QuantizedTensor) -> torch.Tensor:
        """The decoder applied to ``q``'s values: fused with dequantization where it can be
        (returning autocast's dtype where autocast is on, as the decoder itself would)."""
        with torch.no_grad():
            kind = _fusable(self.decoder)
            if kind == "linear" and self.group_dim == -1:
                return _as_autocast(dequantize_project_linear(q, self.decoder))
            if kind == "conv1x1" and self.group_dim == 1 and len(q.shape) == 4:
                return _as_autocast(dequantize_project_conv1x1(q, self.decoder))
            return self._decoded(self._dequantized(q))

    def _quantize(self, z: torch.Tensor) -> QuantizedTensor:
        """Quantize ``z`` (features after the encoder), groups along :attr:`group_dim`."""
        if self.bits is None:
            raise ValueError("encode/decode need quantization: construct with bits=2, 4 or 8")
        grouped = z.detach().movedim(self.group_dim, -1)
        return quantize(grouped, self.bits, self.group_size, symmetric=self.symmetric)

    def _quantized(self, features: torch.Tensor) -> QuantizedTensor:
        """Encoder and quantizer, fused for a linear or pointwise-conv encoder."""
        if self.bits is None:
            raise ValueError("encode/decode need quantization: construct with bits=2, 4 or 8")
        _check_features(features)
        options = {"bits": self.bits, "group_size": self.group_size, "symmetric": self.symmetric}
        with torch.no_grad():
            kind = _fusable(self.encoder)
            if kind == "linear":
                q = project_quantize_linear(features, self.encoder, **options)
            elif kind == "conv1x1" and features.dim() == 4:
                q = project_quantize_conv1x1(features, self.encoder, **options)
            else:
                return self._quantize(self._encoded(features))
            return _as_autocast_codes(q)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, group_size={self.group_size}, snr_db={self.snr_db}"
