"""The training loop `netcfg train` runs: darknet's update (subdivisions accumulated into one step of
`[net] batch` images), on one process or under `torchrun` (DistributedDataParallel, each process a
share of every mini-batch), with darknet `.weights` and state-dict checkpoints."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import NetcfgError
from ..network import Network
from ..weights import DARKNET_VERSION, DarknetHeader, save_darknet_weights
from .loss import DarknetLoss
from .optim import darknet_sgd
from .scale import InputSize
from .schedule import darknet_scheduler
from .targets import collate


@dataclasses.dataclass
class Progress:
    """Where training is: updates done and images seen (darknet's `seen`, all processes together)."""

    update: int = 0
    seen: int = 0


class Trainer:
    """Trains `model` as darknet would; `world` processes (DDP when > 1) each feed a share of each mini-batch."""

    def __init__(self, model: Network, device: torch.device, world: int = 1, sync_bn: bool = False):
        self.model, self.device, self.world = model.to(device).train(), device, world
        net = model.spec.net
        if net.mini_batch % world:
            raise NetcfgError(f"batch/subdivisions = {net.mini_batch} images do not split over {world} processes")
        self.per_process = net.mini_batch // world
        self.loss = DarknetLoss(model)
        runner: torch.nn.Module = model
        if sync_bn and device.type != "cuda":
            raise NetcfgError("--sync-bn needs GPUs: torch's SyncBatchNorm runs on CUDA only")
        if world > 1:
            if sync_bn:
                runner = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ids = [device.index] if device.type == "cuda" else None
            runner = torch.nn.parallel.DistributedDataParallel(runner, device_ids=ids)
        self.runner = runner
        self.optimizer = darknet_sgd(model)
        self.progress = Progress()
        self.scheduler = darknet_scheduler(self.optimizer, net)

    def start_at(self, progress: Progress) -> None:
        """Continue the schedule after `progress.update` updates (weights already loaded)."""
        self.progress = progress
        self.scheduler = darknet_scheduler(self.optimizer, self.model.spec.net, last_update=progress.update)

    def step(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """One darknet update: `subdivisions` mini-batches, then SGD; returns the cost per image."""
        net = self.model.spec.net
        total = 0.0
        for k in range(net.subdivisions):
            images, targets = next(batches)
            last = k == net.subdivisions - 1
            context = self.runner.no_sync() if self.world > 1 and not last else nullcontext()
            self.loss.seen = self.progress.seen + (k + 1) * net.mini_batch
            with context:
                cost = self.loss(self.runner(images.to(self.device)), targets.to(self.device))
                (cost * self.world / net.batch).backward()
            total += float(cost.detach())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.progress.update += 1
        self.progress.seen += net.batch
        return total * self.world / net.batch

    def state(self) -> dict:
        """Everything `--resume` needs."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "update": self.progress.update,
            "seen": self.progress.seen,
        }

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_at(Progress(int(state["update"]), int(state["seen"])))

    def save(self, stem: Path) -> None:
        """`stem.weights` (darknet's format, `seen` in its header) and `stem.pt` (a resumable state dict)."""
        header = getattr(self.model, "darknet_header", None) or DarknetHeader(*DARKNET_VERSION)
        self.model.darknet_header = dataclasses.replace(header, seen=self.progress.seen)
        save_darknet_weights(self.model, stem.with_suffix(".weights"))
        torch.save(self.state(), stem.with_suffix(".pt"))


def batches(
    dataset, per_process: int, rank: int, world: int, workers: int, seed: int, size: InputSize | None = None
) -> Iterator:
    """Mini-batches for this process, epoch after epoch (each process its own share of every epoch);
    with `size`, each mini-batch at the size current when its indices are drawn (with `workers`,
    the mini-batches already in preparation keep the size before)."""
    sampler = torch.utils.data.DistributedSampler(dataset, world, rank, shuffle=True, seed=seed, drop_last=True)
    drawn = sampler if size is None else _Sized(sampler, size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process, sampler=drawn, collate_fn=collate, num_workers=workers, drop_last=True
    )
    if len(loader) == 0:
        raise NetcfgError(f"{len(dataset)} images are too few for mini-batches of {per_process} on {world} processes")
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        dataset.epoch = epoch
        yield from loader
        epoch += 1


class _Sized(torch.utils.data.Sampler):
    """`sampler`'s indices, each with the input size current when it is drawn."""

    def __init__(self, sampler: torch.utils.data.Sampler, size: InputSize):
        self.sampler, self.size = sampler, size

    def __iter__(self):
        return ((index, self.size.current) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def report(progress: Progress, cost: float, average: float, rate: float, started: float) -> None:
    """darknet's progress line, on stderr."""
    seconds = time.perf_counter() - started
    print(
        f"{progress.update}: {cost:.6f}, {average:.6f} avg loss, {rate:.6f} rate, {seconds:.1f} seconds, "
        f"{progress.seen} images",
        file=sys.stderr,
        flush=True,
    )


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, joining the process group when > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
