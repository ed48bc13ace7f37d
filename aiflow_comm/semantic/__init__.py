"""Semantic communication: JSCC encoders and decoders (SNR-adaptive) and task metrics."""

from aiflow_comm.semantic.image_jscc import (
    DOWNSAMPLING,
    ImageDecoder,
    ImageEncoder,
    ImageJSCC,
    latent_channels,
)
from aiflow_comm.semantic.jscc import JSCC
from aiflow_comm.semantic.metrics import accuracy, opta_sdr_db, psnr_db, sdr_db
from aiflow_comm.semantic.snr_adaptive import SNRAdaptiveSequential, SNRAttention, snr_column
from aiflow_comm.semantic.vector_jscc import VectorDecoder, VectorEncoder, VectorJSCC

__all__ = [
    "DOWNSAMPLING",
    "JSCC",
    "ImageDecoder",
    "ImageEncoder",
    "ImageJSCC",
    "SNRAdaptiveSequential",
    "SNRAttention",
    "VectorDecoder",
    "VectorEncoder",
    "VectorJSCC",
    "accuracy",
    "latent_channels",
    "opta_sdr_db",
    "psnr_db",
    "sdr_db",
    "snr_column",
]
