"""Data-parallel training with a SplitLink: two gloo processes launched by torchrun's launcher
give the weights one process gets from the same global batches with the same per-rank noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aiflow_comm.distributed import rank_seed

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "ddp_train.py"


def train(tmp_path: Path, name: str, launcher: list[str], *options: str) -> dict[str, torch.Tensor]:
    out = tmp_path / f"{name}.pt"
    command = [*launcher, str(SCRIPT), "--steps", "4", "--out", str(out), *options]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return torch.load(out)


def test_ddp_matches_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"]  # fmt: skip
    ddp = train(tmp_path, "ddp", launcher)
    single = train(tmp_path, "single", [sys.executable], "--emulate-world-size", "2")
    other_noise = train(tmp_path, "other", [sys.executable], "--emulate-world-size", "2",
                        "--seed", "1")  # fmt: skip
    assert ddp.keys() == single.keys()
    for key in ddp:
        assert torch.allclose(ddp[key], single[key], atol=1e-6), key
    assert any(not torch.allclose(ddp[k], other_noise[k], atol=1e-6) for k in ddp)


def test_rank_seed_without_a_process_group() -> None:
    assert rank_seed(3) == 3
    with pytest.raises(ValueError, match="seed"):
        rank_seed(-1)
