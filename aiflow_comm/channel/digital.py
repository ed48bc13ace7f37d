"""Digital link: bits through 5G LDPC, Gray QAM, a channel, equalization, demapping and decoding."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import Demapper, Mapper
from torch import nn

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.conventions import ebno_db_to_snr_db, snr_db_to_ebno_db
from aiflow_comm.channel.equalization import EQUALIZERS, equalize
from aiflow_comm.channel.fading import RayleighFading, RicianFading
from aiflow_comm.channel.modulation import bits_per_symbol, check_modulation
from aiflow_comm.channel.randomness import RandomSource
from aiflow_comm.channel.theory import ber_awgn, ber_rayleigh, ber_rician
from aiflow_comm.codec.fake import straight_through
from aiflow_comm.codec.quantized import QuantizedTensor, quantize
from aiflow_comm.kernels.reference import pack_codes, unpack_codes

__all__ = [
    "DEMAPPINGS",
    "DigitalLink",
    "LinkResult",
    "bit_flip_ste",
    "bits_to_bytes",
    "bytes_to_bits",
    "ldpc_code_exists",
    "quantized_bit_flip_ste",
]

DEMAPPINGS = ("app", "maxlog")
_BIT_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True, eq=False)
class LinkResult:
    """What a :class:`DigitalLink` delivered for a batch of ``(batch, num_bits)`` bits.

    Attributes:
        bits: hard decisions, the input's shape, dtype and device.
        llr: float32 ``(batch, num_bits)`` logits ``log(P(b=1)/P(b=0))`` of the information bits
            (positive means 1; Sionna's convention): the demapper's output when uncoded, the LDPC
            decoder's a-posteriori output (its messages clipped at +-20) when coded.
        bit_errors: wrong information bits, over the whole batch (padding not counted).
        num_bits: information bits sent, over the whole batch (``batch * num_bits``).
        block_errors: blocks with at least one wrong bit, over the whole batch. A block is a
            codeword of ``ldpc_k`` information bits (its padding included) when coded, and one
            example (all its bits: a packet) when uncoded.
        num_blocks: blocks sent over the whole batch.
        channel_uses: complex symbols sent per example (padding included).
        errors_per_example: int64 ``(batch,)`` wrong bits of each example.
    """

    bits: torch.Tensor
    llr: torch.Tensor
    bit_errors: int
    num_bits: int
    block_errors: int
    num_blocks: int
    channel_uses: int
    errors_per_example: torch.Tensor

    @property
    def ber(self) -> float:
        """Bit error rate over the batch: ``bit_errors / num_bits``."""
        return self.bit_errors / self.num_bits

    @property
    def bler(self) -> float:
        """Block error rate over the batch: ``block_errors / num_blocks``."""
        return self.block_errors / self.num_blocks


class DigitalLink(nn.Module):
    """Send bits over a channel: optional 5G LDPC code, Gray QAM, equalization, soft decoding.

    The chain, per example (one row of ``bits``):

    1. pad the bits with zeros to whole codewords of ``ldpc_k`` bits (coded) and encode each
       with Sionna's ``LDPC5GEncoder(ldpc_k, ldpc_n)`` (5G NR base graphs and rate matching, no
       bit interleaver), or send the bits as they are (uncoded);
    2. pad with zeros to whole symbols and map with Sionna's ``Mapper``: Gray-labelled,
       unit-average-energy ``"bpsk"`` (Sionna's 1-bit ``"pam"``), ``"qpsk"``, ``"16qam"``,
       ``"64qam"`` or ``"256qam"``;
    3. pass the ``(batch, channel_uses)`` complex64 symbols through ``channel`` at ``snr_db``
       (Es/N0 per complex symbol);
    4. equalize with the state the channel returns (:func:`equalize`; ``"zf"`` by default: for a
       flat per-symbol channel ``y / h`` is unbiased with noise ``no / |h|^2``, so the LLRs
       below are exact; ``"mmse"`` is biased and gives approximate LLRs);
    5. compute bit LLRs with Sionna's ``Demapper`` (``"app"`` exact or ``"maxlog"``) using the
       equalizer's ``no_eff``, and decode with ``LDPC5GDecoder`` (flooding belief propagation,
       ``bp_iterations`` iterations, no early stop) when coded;
    6. take hard decisions and strip the padding.

    Padding bits are zeros: they are sent and decoded like the others (the decoder is not told
    they are known) but not counted in ``bit_errors``. Everything runs in single precision (float32,
    complex64), without gradients: for training use :func:`bit_flip_ste` or
    :func:`quantized_bit_flip_ste` with :meth:`surrogate_error_rate` or a measured error rate.

    Args:
        modulation: one of ``"bpsk"``, ``"qpsk"``, ``"16qam"``, ``"64qam"``, ``"256qam"`` (any
            case) or a number of points.
        channel: a channel module called as ``channel(x, snr_db, return_state=True)`` on
            complex ``(batch, n)`` symbols, returning ``(y, ChannelState)``: :class:`AWGN`
            (default, drawing from ``generator``), :class:`RayleighFading`,
            :class:`RicianFading`, an OFDM channel.
        ldpc_k, ldpc_n: information and codeword bits of the 5G LDPC code (both or neither);
            Sionna accepts ``12 <= k <= 8448``, ``n <= 316 * 384`` and rates ``1/5 <= k/n <=
            0.95``; a code that does not decode even without noise (some short ones above rate
            0.9) raises ``ValueError`` at first use.
        equalizer: ``"zf"`` (default), ``"mmse"`` or ``"none"``.
        demapping: ``"app"`` (default) or ``"maxlog"``.
        bp_iterations: belief-propagation iterations of the LDPC decoder (default 20).
        generator: seed or ``torch.Generator`` of the default AWGN channel (ignored when
            ``channel`` is given: seed that channel instead).

    Inputs: ``bits`` ``(batch, num_bits)`` of zeros and ones, dtype bool, an integer type or a
    float type; ``snr_db`` a number, a 0-d tensor or one value per example ``(batch,)``.
    Output: a :class:`LinkResult`.

    >>> link = DigitalLink("16qam", ldpc_k=100, ldpc_n=200, generator=0)
    >>> bits = torch.randint(0, 2, (4, 250), generator=torch.Generator().manual_seed(1))
    >>> result = link(bits, snr_db=15.0)
    >>> torch.equal(result.bits, bits), result.num_blocks, result.channel_uses, link.code_rate
    (True, 12, 150, 0.5)
    """

    def __init__(
        self,
        modulation: str | int = "qpsk",
        *,
        channel: nn.Module | None = None,
        ldpc_k: int | None = None,
        ldpc_n: int | None = None,
        equalizer: str = "zf",
        demapping: str = "app",
        bp_iterations: int = 20,
        generator: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.modulation = check_modulation(modulation)
        if channel is not None and not isinstance(channel, nn.Module):
            raise TypeError(f"channel must be an nn.Module or None; got {type(channel).__name__}")
        if equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {equalizer!r}")
        if demapping not in DEMAPPINGS:
            raise ValueError(f"demapping must be one of {DEMAPPINGS}; got {demapping!r}")
        if isinstance(bp_iterations, bool) or not isinstance(bp_iterations, int):
            raise TypeError(f"bp_iterations must be an int; got {type(bp_iterations).__name__}")
        if bp_iterations < 1:
            raise ValueError(f"bp_iterations must be >= 1; got {bp_iterations}")
        self.channel = channel if channel is not None else AWGN(generator=generator)
        self.equalizer = equalizer
        self.demapping = demapping
        self.bp_iterations = bp_iterations
        self.ldpc_k, self.ldpc_n = _check_ldpc_sizes(ldpc_k, ldpc_n)
        self._blocks: dict[torch.device, tuple[nn.Module, ...]] = {}
        if self.coded:
            self._encoder("cpu")  # Sionna's checks on (k, n), at construction

    @property
    def coded(self) -> bool:
        """Whether an LDPC code protects the bits."""
        return self.ldpc_k is not None

    @property
    def bits_per_symbol(self) -> int:
        """Bits carried by one complex symbol (coded bits when coded)."""
        return bits_per_symbol(self.modulation)

    @property
    def code_rate(self) -> float:
        """``ldpc_k / ldpc_n``, or 1.0 uncoded."""
        return self.ldpc_k / self.ldpc_n if self.coded else 1.0

    def snr_db_for(self, ebno_db: float | torch.Tensor) -> float | torch.Tensor:
        """Es/N0 in dB giving ``ebno_db`` (Eb/N0 per information bit) on this link.

        ``ebno_db + 10 log10(bits_per_symbol * code_rate)`` (padding not accounted for).

        >>> round(DigitalLink("64qam", ldpc_k=750, ldpc_n=1500).snr_db_for(6.0), 4)
        10.7712
        """
        return ebno_db_to_snr_db(ebno_db, self.bits_per_symbol, self.code_rate)

    def channel_uses(self, num_bits: int) -> int:
        """Complex symbols sent for ``num_bits`` information bits (per example).

        >>> DigitalLink("16qam", ldpc_k=100, ldpc_n=200).channel_uses(250)
        150
        """
        if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral):
            raise TypeError(f"num_bits must be an int; got {type(num_bits).__name__}")
        if num_bits < 0:
            raise ValueError(f"num_bits must be >= 0; got {num_bits}")
        coded_bits = math.ceil(num_bits / self.ldpc_k) * self.ldpc_n if self.coded else num_bits
        return math.ceil(coded_bits / self.bits_per_symbol)

    def codec_blocks(self, device: torch.device | str) -> tuple[nn.Module, ...]:
        """Sionna's ``(Mapper, Demapper[, LDPC5GEncoder, LDPC5GDecoder])`` on ``device``.

        Built once per device (single precision) and cached; they hold no randomness.
        """
        device = torch.device(device)
        if device not in self._blocks:
            kind = "pam" if self.modulation == "bpsk" else "qam"
            common = {"precision": "single", "device": str(device)}
            m = self.bits_per_symbol
            blocks: tuple[nn.Module, ...] = (
                Mapper(kind, m, **common),
                Demapper(self.demapping, kind, m, **common),
            )
            if self.coded:
                encoder = self._encoder(device)
                decoder = LDPC5GDecoder(
                    encoder, hard_out=False, num_iter=self.bp_iterations, **common
                )
                self._check_decodable(encoder, decoder, device)
                blocks += (encoder, decoder)
            self._blocks[device] = blocks
        return self._blocks[device]

    def _check_decodable(
        self, encoder: LDPC5GEncoder, decoder: LDPC5GDecoder, device: torch.device
    ) -> None:
        """Raise ``ValueError`` unless a codeword comes back without noise: some short codes of
        rate above about 0.9 that Sionna accepts (k=100, n=106; any k < 40 at its shortest n)
        never decode, and every block would be lost at any SNR."""
        info = torch.randint(0, 2, (1, self.ldpc_k), generator=torch.Generator().manual_seed(0))
        info = info.to(device=device, dtype=torch.float32)
        certain = (2.0 * encoder(info) - 1.0) * 20.0  # LLRs, positive for 1 (Sionna's sign)
        if not torch.equal((decoder(certain) > 0).to(info.dtype), info):
            raise ValueError(
                f"ldpc_k={self.ldpc_k}, ldpc_n={self.ldpc_n} (rate {self.code_rate:.3f}) does not "
                "decode even without noise with Sionna's 5G LDPC decoder: choose a lower rate "
                "or a longer code"
            )

    def _encoder(self, device: torch.device | str) -> LDPC5GEncoder:
        try:
            return LDPC5GEncoder(self.ldpc_k, self.ldpc_n, precision="single", device=str(device))
        except ValueError as exc:
            raise ValueError(
                f"ldpc_k={self.ldpc_k}, ldpc_n={self.ldpc_n} is not a 5G LDPC code Sionna "
                f"supports ({exc}): among others, it needs 12 <= k <= 8448, n <= {316 * 384}, "
                "a rate k/n in [1/5, 0.95], and above 1/3 for k > 3840 (base graph 1); "
                "ldpc_code_exists(k, n) tells"
            ) from exc

    @torch.no_grad()
    def forward(self, bits: torch.Tensor, snr_db: float | torch.Tensor) -> LinkResult:
        sent = _check_bits(bits)
        batch, num_bits = sent.shape
        _check_snr(snr_db, batch)
        blocks = self.codec_blocks(sent.device)
        mapper, demapper = blocks[:2]
        m = self.bits_per_symbol
        info = sent.to(torch.float32)
        if self.coded:
            encoder, decoder = blocks[2:]
            codewords = math.ceil(num_bits / self.ldpc_k)
            info = _pad_to(info, codewords * self.ldpc_k)
            coded = encoder(info.reshape(batch, codewords, self.ldpc_k)).reshape(batch, -1)
        else:
            codewords, coded = 1, info
        symbols = math.ceil(coded.shape[1] / m)
        x = mapper(_pad_to(coded, symbols * m))
        y, state = self.channel(x, snr_db, return_state=True)
        x_hat, no_eff = equalize(y, state, self.equalizer)
        llr = demapper(x_hat, no_eff.to(torch.float32))[:, : coded.shape[1]]
        # Below about -370 dB, |y - s|**2 overflows float32 in the demapper (inf - inf): the
        # symbols carry no information there, which an LLR of 0 says.
        llr = torch.nan_to_num(llr, nan=0.0)
        if self.coded:
            llr = decoder(llr.reshape(batch, codewords, self.ldpc_n)).reshape(batch, -1)
            # The decoder's own hard decision is 1 for a logit >= 0 (its LLR <= 0).
            decided = llr >= 0
        else:
            decided = llr > 0  # Sionna's hard_decisions
        wrong = decided != info.bool()
        per_example = wrong[:, :num_bits].sum(dim=1)
        if self.coded:
            block_errors = int(wrong.reshape(batch, codewords, self.ldpc_k).any(-1).sum())
        else:
            block_errors = int((per_example > 0).sum())
        return LinkResult(
            bits=decided[:, :num_bits].to(bits.dtype),
            llr=llr[:, :num_bits].float(),
            bit_errors=int(per_example.sum()),
            num_bits=batch * num_bits,
            block_errors=block_errors,
            num_blocks=batch * codewords,
            channel_uses=symbols,
            errors_per_example=per_example,
        )

    def send_bytes(
        self,
        payload: bytes | bytearray | memoryview,
        snr_db: float | torch.Tensor,
        *,
        device: torch.device | str = "cpu",
    ) -> tuple[bytes, LinkResult]:
        """Send a byte string (for example ``QuantizedTensor.to_bytes()``) as one example.

        The bytes become bits least significant bit first (:func:`bytes_to_bits`), go through
        :meth:`forward` as a ``(1, 8 * len(payload))`` batch on ``device``, and are packed back.
        ``snr_db`` is a number or a 0-d tensor. Errors the link leaves show up in the received
        bytes; the wire format's CRC32 then makes ``QuantizedTensor.from_bytes`` raise
        :class:`~aiflow_comm.codec.WireFormatError`.

        >>> link = DigitalLink("qpsk", generator=0)
        >>> received, result = link.send_bytes(b"hello", snr_db=30.0)
        >>> received, result.bit_errors, result.channel_uses
        (b'hello', 0, 20)
        """
        bits = bytes_to_bits(payload, device=device)
        result = self(bits[None], snr_db)
        return bits_to_bytes(result.bits[0]), result

    def surrogate_error_rate(self, snr_db: float | torch.Tensor) -> float | torch.Tensor:
        """Closed-form bit error probability of the *uncoded* modulation at ``snr_db`` (Es/N0).

        A training surrogate for :func:`bit_flip_ste`, not the link's error rate when coded: it
        is the raw (channel) bit error rate before LDPC decoding, with perfect CSI and coherent
        detection (whatever the equalizer), at Eb/N0 = ``snr_db - 10 log10(bits_per_symbol)``:
        ``ber_awgn`` for :class:`AWGN`, ``ber_rayleigh`` for :class:`RayleighFading` (any
        coherence gives the same average), ``ber_rician`` for :class:`RicianFading` (its
        ``k_factor``), and ``ber_rayleigh`` for an :class:`OFDMChannel` with a non-line-of-sight
        profile (``"A"`` to ``"C"``: each resource element's gain is a sum of independent
        Gaussian taps or rays, ``CN(0, 1)``), ``normalize_channel=False`` (normalizing each
        frame removes its slow fading: the error rate then depends on the frequency selectivity,
        between AWGN's and Rayleigh's) and ``csi="perfect"`` (LS estimates about double the
        error rate). For a coded link, another OFDM channel or another channel, measure the bit
        error rate with :meth:`forward` (``LinkResult.ber``) and pass that instead. Returns a
        float for a number, else a float32 tensor of ``snr_db``'s shape on its device.

        >>> round(DigitalLink("bpsk").surrogate_error_rate(0.0), 4)
        0.0786
        """
        theory = self._surrogate_theory()
        if isinstance(snr_db, torch.Tensor):
            ebno_db = snr_db.detach().double().cpu().numpy() - 10.0 * math.log10(
                self.bits_per_symbol
            )
            p = np.asarray(theory(self.modulation, ebno_db), dtype=np.float32)
            return torch.from_numpy(p).reshape(snr_db.shape).to(snr_db.device)
        return theory(self.modulation, snr_db_to_ebno_db(snr_db, self.bits_per_symbol))

    def _surrogate_theory(self) -> Callable[[str, object], float | np.ndarray]:
        """The closed-form ``ber(modulation, ebno_db)`` of :meth:`surrogate_error_rate`."""
        channel, kind = self.channel, type(self.channel)
        if kind is AWGN:
            return ber_awgn
        if kind is RayleighFading:
            return ber_rayleigh
        if kind is RicianFading:
            return functools.partial(ber_rician, k_factor=channel.k_factor)
        from aiflow_comm.channel.ofdm import OFDMChannel  # Sionna's OFDM blocks: only if asked

        non_los = kind is OFDMChannel and channel.profile in ("A", "B", "C")
        if non_los and not channel.normalize_channel and channel.csi == "perfect":
            return ber_rayleigh
        raise NotImplementedError(
            f"no closed-form error rate for channel {kind.__name__} (AWGN, RayleighFading, "
            "RicianFading, and OFDMChannel with profile A-C, normalize_channel=False and "
            "csi='perfect' have one): measure it with DigitalLink.forward and pass it as p"
        )

    def extra_repr(self) -> str:
        code = f"ldpc_k={self.ldpc_k}, ldpc_n={self.ldpc_n}, " if self.coded else ""
        return (
            f"modulation={self.modulation!r}, {code}equalizer={self.equalizer!r}, "
            f"demapping={self.demapping!r}, bp_iterations={self.bp_iterations}"
        )


def bytes_to_bits(
    payload: bytes | bytearray | memoryview, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The bits of ``payload`` as uint8 ``(8 * len(payload),)``, each byte's LSB first.

    >>> bytes_to_bits(b"\\x01\\x80").tolist()
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"payload must be bytes, bytearray or memoryview; got {type(payload).__name__}"
        )
    raw = torch.from_numpy(np.frombuffer(bytes(payload), dtype=np.uint8).copy()).to(device)
    shifts = torch.arange(8, dtype=torch.uint8, device=raw.device)
    return ((raw[:, None] >> shifts) & 1).reshape(-1)


def bits_to_bytes(bits: torch.Tensor) -> bytes:
    """Inverse of :func:`bytes_to_bits`: ``(8 * n,)`` zeros and ones to ``n`` bytes.

    >>> bits_to_bytes(bytes_to_bits(b"AIFQ"))
    b'AIFQ'
    """
    if bits.dim() != 1 or bits.numel() % 8:
        raise ValueError(
            f"bits must be 1-D with a multiple of 8 entries; got shape {tuple(bits.shape)}"
        )
    shifts = torch.arange(8, dtype=torch.int32, device=bits.device)
    packed = (bits.reshape(-1, 8).to(torch.int32) << shifts).sum(dim=1).to(torch.uint8)
    return packed.cpu().numpy().tobytes()


def bit_flip_ste(
    bits: torch.Tensor,
    p: float | torch.Tensor,
    generator: int | torch.Generator | None = None,
) -> torch.Tensor:
    """Flip each bit with probability ``p`` (a binary symmetric channel), straight-through.

    The forward value is ``1 - b`` where a flip was drawn and ``b`` elsewhere (so soft bits in
    ``[0, 1]`` work too); the gradient with respect to ``bits`` is the identity, and ``p`` gets
    none. Flips are independent, drawn with ``torch.rand(bits.shape) < p``.

    Args:
        bits: float tensor of any shape, usually zeros and ones.
        p: flip probability in ``[0, 1]``: a number or a tensor broadcastable to ``bits`` (for
            example ``(batch, 1)`` per example, from :meth:`DigitalLink.surrogate_error_rate`).
        generator: int seed (the same seed gives the same flips), ``torch.Generator`` on
            ``bits``' device, or ``None`` for torch's global generator.

    >>> bits = torch.tensor([0.0, 1.0, 1.0, 0.0], requires_grad=True)
    >>> bit_flip_ste(bits, 1.0)
    tensor([1., 0., 0., 1.], grad_fn=<_StraightThroughBackward>)
    >>> bit_flip_ste(bits, 0.0).sum().backward()
    >>> bits.grad
    tensor([1., 1., 1., 1.])
    """
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"bits must be a torch.Tensor; got {type(bits).__name__}")
    if not bits.is_floating_point():
        raise TypeError(
            f"bits must be a floating-point tensor (for the gradient); got {bits.dtype}"
        )
    flips = _draw_flips(p, bits.shape, bits.device, generator)
    corrupted = torch.where(flips, 1 - bits.detach(), bits.detach())
    return straight_through(bits, corrupted)


def quantized_bit_flip_ste(
    x: torch.Tensor,
    bits: int = 8,
    group_size: int = 128,
    *,
    p: float | torch.Tensor,
    symmetric: bool = True,
    generator: int | torch.Generator | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """:func:`~aiflow_comm.codec.fake_quantize` with each code bit flipped with probability ``p``.

    Quantizes ``x`` (nearest rounding, per group along the last dimension), flips each of the
    ``bits`` bits of every code independently with probability ``p``, and decodes: the forward
    value is what :func:`~aiflow_comm.codec.dequantize` gives for the codes with those bits
    flipped, as if the code bytes of the wire format crossed a binary symmetric channel while
    the header and scales arrived intact (a surrogate: over a real link an error anywhere in
    the message fails the CRC). The gradient is the identity (straight-through), as in
    ``fake_quantize``; ``p`` gets none. ``p = 0`` gives ``fake_quantize(x)`` exactly.

    Args:
        x: float32, float16 or bfloat16 tensor of any shape.
        bits, group_size, symmetric, backend: as in :func:`~aiflow_comm.codec.quantize`.
        p: flip probability in ``[0, 1]``, a number or a tensor broadcastable to ``x``.
        generator: int seed, ``torch.Generator`` on ``x``'s device, or ``None``.

    >>> x = torch.randn(2, 64, requires_grad=True)
    >>> y = quantized_bit_flip_ste(x, 4, 32, p=1.0)  # all bits: code q + 8 becomes 7 - q
    >>> q = quantize(x.detach(), 4, 32)
    >>> torch.allclose(y, -q.dequantize() - q.scales.repeat_interleave(32, dim=1))
    True
    >>> y.sum().backward(); bool((x.grad == 1).all())
    True
    """
    q = quantize(x.detach(), bits, group_size, symmetric=symmetric, backend=backend)
    layout = q.layout.within_row()
    codes = unpack_codes(q.codes, layout)  # (rows, row_len) int32
    flips = _draw_flips(p, x.shape, x.device, generator, trailing=bits)
    weights = torch.ones((), dtype=torch.int32, device=x.device) << torch.arange(
        bits, dtype=torch.int32, device=x.device
    )
    codes = codes ^ (flips.to(torch.int32) * weights).sum(-1).reshape(codes.shape)
    size, groups = layout.group_size, layout.num_groups
    padded = groups * size - layout.row_len
    grouped = nn.functional.pad(codes, (0, padded)).reshape(layout.rows, groups, size)
    flipped = QuantizedTensor(
        pack_codes(grouped, layout),
        q.scales,
        q.zero_points,
        q.shape,
        q.dtype,
        q.bits,
        q.group_size,
        q.scheme,
    )
    return straight_through(x, flipped.dequantize(backend=backend))


def _draw_flips(
    p: float | torch.Tensor,
    shape: torch.Size,
    device: torch.device,
    generator: int | torch.Generator | None,
    trailing: int | None = None,
) -> torch.Tensor:
    """Bool flips of ``shape`` (``shape + (trailing,)``), each true with probability ``p``."""
    if isinstance(p, bool) or not isinstance(p, (int, float, torch.Tensor)):
        raise TypeError(f"p must be a number or a tensor; got {type(p).__name__}")
    dtype = torch.float32
    if isinstance(p, torch.Tensor):
        if p.is_complex() or p.dtype == torch.bool:
            raise TypeError(f"p must be a real tensor; got {p.dtype}")
        dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
        try:
            p = torch.broadcast_to(p.detach().to(device, dtype), shape)
        except RuntimeError as exc:
            raise ValueError(
                f"p of shape {tuple(p.shape)} does not broadcast to the input's shape "
                f"{tuple(shape)}"
            ) from exc
        if bool(((p < 0) | (p > 1) | p.isnan()).any()):
            raise ValueError("p must hold probabilities in [0, 1]")
        if trailing is not None:
            p = p[..., None]
    elif not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1]; got {p}")
    full = tuple(shape) + (() if trailing is None else (trailing,))
    source = RandomSource(generator).generator(device)
    return torch.rand(full, generator=source, device=device, dtype=dtype) < p


def _pad_to(bits: torch.Tensor, length: int) -> torch.Tensor:
    """``bits`` with zero bits appended up to ``length`` per row (itself when already there)."""
    if bits.shape[1] == length:
        return bits
    return nn.functional.pad(bits, (0, length - bits.shape[1]))


def ldpc_code_exists(k: int, n: int) -> bool:
    """Whether Sionna builds the 5G LDPC code of ``k`` information and ``n`` codeword bits
    (its base graphs limit the rate and the sizes together, beyond the plain ranges).

    >>> ldpc_code_exists(100, 200), ldpc_code_exists(5904, 24576)
    (True, False)
    """
    try:
        LDPC5GEncoder(k, n, precision="single", device="cpu")
    except ValueError:
        return False
    return True


def _check_ldpc_sizes(k: object, n: object) -> tuple[int | None, int | None]:
    if (k is None) != (n is None):
        raise ValueError(
            f"ldpc_k and ldpc_n must be given together (or neither, uncoded); got "
            f"ldpc_k={k!r}, ldpc_n={n!r}"
        )
    for name, value in (("ldpc_k", k), ("ldpc_n", n)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral)
        ):
            raise TypeError(f"{name} must be an int or None; got {type(value).__name__}")
    return (None, None) if k is None else (int(k), int(n))  # NumPy ints as Python ints


def _check_bits(bits: object) -> torch.Tensor:
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"bits must be a torch.Tensor; got {type(bits).__name__}")
    if bits.dtype not in _BIT_DTYPES and not bits.is_floating_point():
        raise TypeError(f"bits must be bool, an integer or a float tensor; got {bits.dtype}")
    if bits.dim() != 2:
        raise ValueError(
            f"bits must be 2-D (batch, num_bits); got shape {tuple(bits.shape)}"
            + " (use bits[None] for one example)" * (bits.dim() == 1)
        )
    if bits.shape[0] == 0 or bits.shape[1] == 0:
        raise ValueError(f"bits must hold at least one bit; got shape {tuple(bits.shape)}")
    if bits.dtype != torch.bool and bool(((bits != 0) & (bits != 1)).any()):
        bad = bits[(bits != 0) & (bits != 1)][0].item()
        raise ValueError(f"bits must hold only 0 and 1; got {bad}")
    return bits


def _check_snr(snr_db: object, batch: int) -> None:
    if isinstance(snr_db, torch.Tensor) and tuple(snr_db.shape) not in ((), (batch,)):
        raise ValueError(
            f"snr_db must be a number, a 0-d tensor or one value per example, shape ({batch},); "
            f"got shape {tuple(snr_db.shape)}"
        )
