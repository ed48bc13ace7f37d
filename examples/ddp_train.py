"""Train a split CNN with a SplitLink (fake quantization + Rayleigh fading) data-parallel.

Several GPUs or machines (one process per GPU, NCCL):

    torchrun --nproc_per_node 4 examples/ddp_train.py --backend nccl --device cuda
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 \\
        --nproc_per_node 8 examples/ddp_train.py --backend nccl --device cuda

Two CPU processes: ``torchrun --nproc_per_node 2 examples/ddp_train.py``. Each rank trains on
its shard of every global batch and draws its channel noise from ``rank_seed(seed)``.
``--emulate-world-size W`` runs the same training in one process: W replicas, each with the
generator its rank would have, gradients averaged as DistributedDataParallel averages them;
the tests check that both give the same weights.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aiflow_comm.channel import AnalogLink, RayleighFading
from aiflow_comm.distributed import rank_seed
from aiflow_comm.split import SplitLink, SplitModel


def build_model(link_seed: int, device: torch.device) -> SplitModel:
    torch.manual_seed(0)  # the same initial weights on every rank
    head = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    tail = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    channel = RayleighFading(coherence=16, generator=link_seed)
    link = SplitLink(bits=8, group_size=64, link=AnalogLink(channel), snr_db=(0.0, 20.0),
                     generator=link_seed)  # fmt: skip
    return SplitModel(head, link, tail).to(device)


def digits(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images.to(device), torch.tensor(data.target).to(device)


def shard(step: int, rank: int, world: int, batch: int, count: int) -> torch.Tensor:
    """Indices of rank ``rank``'s shard of global batch ``step`` (the same on every rank)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(step))[:batch]
    return order[rank * batch // world : (rank + 1) * batch // world]


def train_ddp(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    # A rank whose peer never arrives fails after two minutes instead of waiting forever.
    dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(args.device, rank % torch.cuda.device_count()) if args.device == "cuda" \
        else torch.device("cpu")  # fmt: skip
    model = DistributedDataParallel(build_model(rank_seed(args.seed), device))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    images, labels = digits(device)
    loss = None  # --steps 0: no step, nothing to release
    for step in range(args.steps):
        idx = shard(step, rank, world, args.batch_size, len(labels)).to(device)
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    # Release DDP (its reducer holds the process group) and wait for every rank before the
    # group goes: a rank tearing these down while its peer has already left can wait forever.
    del model, optimizer, loss
    dist.barrier()
    dist.destroy_process_group()
    return state if rank == 0 else {}


def train_emulated(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    world, device = args.emulate_world_size, torch.device(args.device)
    replicas = [build_model(args.seed + rank, device) for rank in range(world)]
    optimizers = [torch.optim.SGD(r.parameters(), lr=args.lr) for r in replicas]
    images, labels = digits(device)
    for step in range(args.steps):
        for rank, (replica, optimizer) in enumerate(zip(replicas, optimizers, strict=True)):
            idx = shard(step, rank, world, args.batch_size, len(labels)).to(device)
            optimizer.zero_grad()
            nn.functional.cross_entropy(replica(images[idx]), labels[idx]).backward()
        for params in zip(*(r.parameters() for r in replicas), strict=True):
            mean = torch.stack([p.grad for p in params]).sum(0) / world
            for p in params:
                p.grad.copy_(mean)
        for optimizer in optimizers:
            optimizer.step()
    return {k: v.detach().cpu() for k, v in replicas[0].state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--emulate-world-size",
        type=int,
        default=0,
        help="train that many replicas in one process (default: 1 without torchrun)",
    )
    parser.add_argument("--out", help="save the trained weights here (rank 0)")
    parser.add_argument(
        "--watchdog-s", type=float, help="print every thread's stack and exit after this long"
    )
    args = parser.parse_args()
    if args.steps < 0 or args.batch_size < 1 or args.emulate_world_size < 0:
        parser.error("--steps must be >= 0, --batch-size >= 1 and --emulate-world-size >= 0")
    if args.watchdog_s:
        faulthandler.dump_traceback_later(args.watchdog_s, exit=True)
    distributed = "RANK" in os.environ and not args.emulate_world_size
    if not distributed and args.emulate_world_size < 1:
        args.emulate_world_size = 1
    state = train_ddp(args) if distributed else train_emulated(args)
    if state and args.out:
        torch.save(state, args.out)
    if state:
        norms = {k: float(v.float().norm()) for k, v in state.items()}
        print(json.dumps({"mode": "ddp" if distributed else "emulated", "weight_norms": norms}))


if __name__ == "__main__":
    main()
