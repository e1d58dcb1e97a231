"""`netcfg train CFG DATA`: darknet's `detector train`, on one process or under `torchrun`."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

TRAIN_HELP = "train a detector from a cfg and a darknet .data file (torchrun for several processes)"


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cfg", metavar="CFG", help="the network's cfg file")
    parser.add_argument("data", metavar="DATA", help="darknet .data file: classes, train, valid, names, backup")
    parser.add_argument("--weights", help="darknet .weights to start from (a partial file such as darknet53.conv.74)")
    parser.add_argument("--clear", action="store_true", help="start counting updates at 0 despite --weights' seen")
    parser.add_argument("--resume", help="a .pt checkpoint written by netcfg train, to continue from")
    parser.add_argument("--max-batches", type=int, help="stop after this many updates (default: [net] max_batches)")
    parser.add_argument("--backup", help="checkpoint folder (default: the .data file's backup)")
    parser.add_argument("--save-every", type=int, default=100, help="write <cfg>_last.* every N updates")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes per training process")
    parser.add_argument("--sync-bn", action="store_true", help="synchronise batch norm across processes")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed for shuffling and augmentation")


def run_train(args: argparse.Namespace) -> int:
    """Train until max_batches, writing `<backup>/<cfg>_last.{weights,pt}` and finally `_final.*`."""
    import torch

    from ..api import build
    from ..errors import CfgWarning, NetcfgError
    from ..weights import load_darknet_weights
    from .data import read_data_file, unapplied_augmentation
    from .loop import Progress, Trainer, batches, distributed, report
    from .scale import MultiScale

    rank, world, local = distributed()
    torch.manual_seed(args.seed)
    data = read_data_file(args.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        model = build(args.cfg)
    net = model.spec.net
    updates = args.max_batches if args.max_batches is not None else net.max_batches
    if updates <= 0:
        raise NetcfgError(f"{args.cfg}: max_batches=0: nothing to train (set it, or pass --max-batches)")
    heads = [model.spec.layers[i].section for i in model.spec.outputs if model.spec.layers[i].section.is_output]
    mismatch = [h.classes for h in heads if h.classes != data.classes]
    if mismatch:
        raise NetcfgError(f"{args.data}: classes = {data.classes}, but the cfg's heads have classes={mismatch[0]}")
    default = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device or default)
    progress = Progress()
    if args.weights:
        load_darknet_weights(model, args.weights)
        seen = 0 if args.clear else model.darknet_header.seen
        progress = Progress(seen // net.batch, seen)
    trainer = Trainer(model, device, world, args.sync_bn)
    if args.resume:
        trainer.load_state(torch.load(args.resume, map_location=device, weights_only=True))
    elif progress.update:
        trainer.start_at(progress)
    dataset = _dataset(model, heads[-1], data, args.seed)
    multi_scale = getattr(heads[-1], "random", 0)
    scales = MultiScale(net, multi_scale, updates, args.seed) if multi_scale else None
    if scales:
        scales.check(model.spec)
    stream = batches(dataset, trainer.per_process, rank, world, args.workers, args.seed, scales and scales.size)
    backup = Path(args.backup) if args.backup else data.backup
    stem = backup / Path(args.cfg).stem
    if rank == 0:
        backup.mkdir(parents=True, exist_ok=True)
        left_out = unapplied_augmentation(net)
        if left_out:
            print(f"not applied (see README, Training): {', '.join(left_out)}", file=sys.stderr)
    started, average = time.perf_counter(), None
    while trainer.progress.update < updates:
        drawn = scales.before_update(trainer.progress.update, average is None) if scales else None
        if drawn and rank == 0:
            print(f"resizing to {drawn[1]} x {drawn[0]} (random={multi_scale:g})", file=sys.stderr)
        cost = trainer.step(stream)
        average = cost if average is None else 0.9 * average + 0.1 * cost
        if rank == 0:
            report(trainer.progress, cost, average, trainer.optimizer.param_groups[0]["lr"], started)
            if trainer.progress.update % args.save_every == 0:
                trainer.save(Path(f"{stem}_last"))
    if rank == 0:
        trainer.save(Path(f"{stem}_final"))
    return 0


def _dataset(model, head, data, seed: int):
    """The training images as darknet's load_data_detection gives them, with the last head's keys."""
    from .data import Augment, DetectionDataset, image_list

    net = model.spec.net
    paths, augment = image_list(data.train), Augment.from_cfg(net, head)
    return DetectionDataset(paths, model.spec.input_shape, augment, net.letter_box, head.max_boxes, seed)
