"""Data-parallel training with a SplitLink: two gloo processes, launched with the environment
torchrun gives its workers, reach the weights one process gets from the same global batches with
the same per-rank noise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aiflow_comm.distributed import rank_seed

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "ddp_train.py"


def train(tmp_path: Path, name: str, launcher: list[str], *options: str) -> dict[str, torch.Tensor]:
    """One process, one thread as each worker of :func:`train_two_ranks`: a matmul summed in
    another order by another thread count could move a fake-quantization code across a rounding
    boundary, and the runs would part by more than rounding."""
    out = tmp_path / f"{name}.pt"
    command = [*launcher, str(SCRIPT), "--steps", "4", "--out", str(out), *options]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, capture_output=True, timeout=300, env=env)
    return torch.load(out)


def train_two_ranks(tmp_path: Path, steps: int = 4) -> dict[str, torch.Tensor]:
    """Two workers with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT, ...)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp.pt"
    shared = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
              "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, str(SCRIPT), "--steps", str(steps), "--out", str(out)]
    workers = [
        subprocess.Popen(
            [*command, "--watchdog-s", "150"],
            env=os.environ | shared | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    try:
        for rank, worker in enumerate(workers):
            output, _ = worker.communicate(timeout=300)
            assert worker.returncode == 0, f"rank {rank} failed:\n{output.decode()[-2000:]}"
    finally:
        for worker in workers:
            worker.kill()
    return torch.load(out)


def test_ddp_matches_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    ddp = train_two_ranks(tmp_path)
    single = train(tmp_path, "single", [sys.executable], "--emulate-world-size", "2")
    other_noise = train(tmp_path, "other", [sys.executable], "--emulate-world-size", "2",
                        "--seed", "1")  # fmt: skip
    assert ddp.keys() == single.keys()
    for key in ddp:
        assert torch.allclose(ddp[key], single[key], atol=1e-6), key
    assert any(not torch.allclose(ddp[k], other_noise[k], atol=1e-6) for k in ddp)


def test_ddp_with_no_step_saves_the_initial_weights(tmp_path: Path) -> None:
    """--steps 0 failed on every rank: `del loss` of a loss no step had made."""
    ddp = train_two_ranks(tmp_path, steps=0)
    single = train(tmp_path, "single", [sys.executable], "--emulate-world-size", "2",
                   "--steps", "0")  # fmt: skip
    assert ddp.keys() == single.keys() and all(torch.equal(ddp[k], single[k]) for k in ddp)
    with pytest.raises(subprocess.CalledProcessError):  # a negative count is refused
        train(tmp_path, "negative", [sys.executable], "--steps", "-1")


def test_rank_seed_without_a_process_group() -> None:
    assert rank_seed(3) == 3
    assert rank_seed(np.int64(3)) == 3 and type(rank_seed(np.int64(3))) is int
    with pytest.raises(ValueError, match="seed"):
        rank_seed(-1)


def test_the_example_runs_as_one_process_without_torchrun(tmp_path: Path) -> None:
    plain = train(tmp_path, "plain", [sys.executable])
    one = train(tmp_path, "one", [sys.executable], "--emulate-world-size", "1")
    assert plain.keys() == one.keys() and all(torch.equal(plain[k], one[k]) for k in plain)
