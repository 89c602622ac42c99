"""One benchmark process: runs jobs of one contender and prints one JSON line per job.

Usage:
    python benchmarks/contenders.py CONTENDER JOB[,JOB...] [--threads N] [--seed S]
        [--scale full|quick] [--device cpu|cuda]

CONTENDER: hand, lightning, pyblaze_pl or pyblaze (the original PyBlaze 2.x, when installed);
hand_pl (diagnostic: the hand-written loop after ``import pytorch_lightning``); fabric
(diagnostic: a Lightning Fabric prototype of pyblaze_pl's training loop).
JOB: a (tutorial CNN, batch 256), b (16-32-4 MLP, batch 32, 2 epochs), c1 / c10 (evaluate on 1x
/ 10x a validation set: time and peak memory), gpu (workload a on one GPU, use --device cuda).

Only the framework call itself is timed (``fit`` / ``evaluate`` / the hand-written loop);
imports, data and model creation are not. Before it, each process runs the contender once on a
single batch (warm-up: lazy imports, first kernels) and then once more, timed, as the *fixed
cost* of one call (set-up and tear-down plus one step). Run by benchmarks/run.py, which
alternates contenders over fresh processes.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import torch
from torch import nn
from torch.utils.data import DataLoader

MARKER = "BENCH-JSON "


class Contender:
    """How one framework builds, trains and evaluates the workload's model."""

    name = ""

    def build(self, workload: str) -> nn.Module:
        return common.MODELS[workload]()

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
        raise NotImplementedError


class Hand(Contender):
    """A hand-written PyTorch loop (the reference: ratio 1.00)."""

    name = "hand"

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        optimizer = model.bench_optimizer
        loss_fn = nn.CrossEntropyLoss()
        model.to(device)
        model.train()
        for _ in range(epochs):
            losses = []
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            model.bench_epoch_loss = float(torch.stack(losses).mean())
        if device != "cpu":
            model.cpu()

    def evaluate(self, model: nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
        # Streaming counts: accuracy, and F1 of class 1 (PyBlaze's binary default, c=1).
        model.to(device)
        model.eval()
        correct = total = tp = fp = fn = 0
        with torch.no_grad():
            for x, y in loader:
                pred = model(x.to(device)).argmax(dim=1)
                y = y.to(device)
                correct += int((pred == y).sum())
                total += len(y)
                tp += int(((pred == 1) & (y == 1)).sum())
                fp += int(((pred == 1) & (y != 1)).sum())
                fn += int(((pred != 1) & (y == 1)).sum())
        nan = float("nan")
        precision = tp / (tp + fp) if tp + fp else nan
        recall = tp / (tp + fn) if tp + fn else nan
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else nan
        return {"accuracy": correct / total, "f1": f1}


class HandAfterLightningImport(Hand):
    """The hand-written loop in a process that imported ``pytorch_lightning`` (diagnostic).

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` for the whole process
    (``lightning_fabric/__init__.py``); until CUDA is initialised, every
    ``torch.cuda.is_available()`` then asks NVML again, and Adam's ``step`` asks every step.
    """

    name = "hand_pl"

    def __init__(self) -> None:
        import pytorch_lightning  # noqa: F401


class Lightning(Contender):
    """A plain LightningModule + Trainer (progress bar, logger, checkpoints, summary off)."""

    name = "lightning"

    def __init__(self) -> None:
        import pytorch_lightning as pl

        class LitModule(pl.LightningModule):
            def __init__(self, model: nn.Module) -> None:
                super().__init__()
                self.model = model
                self.loss_fn = nn.CrossEntropyLoss()

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                x, y = batch
                return self.loss_fn(self.model(x), y)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.Adam(self.model.parameters())

        self.pl = pl
        self.module_class = LitModule

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        trainer = self.pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu" if device == "cpu" else "gpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(self.module_class(model), loader)


class PyBlazePL(Contender):
    """pyblaze_pl ``model.fit`` / ``model.evaluate`` with default settings."""

    name = "pyblaze_pl"

    def __init__(self) -> None:
        import pyblaze_pl.nn as xnn
        import pyblaze_pl.nn.functional as X

        self.xnn, self.X = xnn, X

    def build(self, workload: str) -> nn.Module:
        base = common.MODELS[workload]
        estimator = type(base.__name__, (self.xnn.Estimator, base), {})
        estimator.__engine__ = self.xnn.SupervisedEngine
        return estimator()

    runner = "auto"  # the Fabric runner for these calls

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        model.fit(
            loader,
            epochs=epochs,
            optimizer=model.bench_optimizer,
            loss=nn.CrossEntropyLoss(),
            gpu=device != "cpu",
            runner=self.runner,
        )

    def evaluate(self, model: nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
        ev = model.evaluate(
            loader,
            metrics={"accuracy": self.X.accuracy, "f1": self.X.f1_score},
            gpu=device != "cpu",
            runner=self.runner,
        )
        return {"accuracy": float(ev.accuracy), "f1": float(ev.f1)}


class PyBlazePLTrainer(PyBlazePL):
    """pyblaze_pl forced onto Lightning's Trainer (``runner='trainer'``)."""

    name = "pyblaze_pl_trainer"
    runner = "trainer"


class FabricPrototype(Contender):
    """Diagnostic: a prototype of ``SupervisedEngine.train`` on Lightning Fabric instead of the
    Trainer (not a pyblaze_pl code path). Same per-epoch bookkeeping as pyblaze_pl: each batch's
    loss stays on the device, one host transfer per epoch; the same NVML-check lift as
    pyblaze_pl's CPU runs."""

    name = "fabric"

    def __init__(self) -> None:
        from lightning_fabric import Fabric

        from pyblaze_pl._lightning.devices import DeviceConfig, fast_cuda_checks

        self.fabric_class = Fabric
        self.fast_cuda_checks = fast_cuda_checks
        self.device_config = DeviceConfig

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        fabric = self.fabric_class(accelerator="cpu" if device == "cpu" else "gpu", devices=1)
        loss_fn = nn.CrossEntropyLoss()
        accelerator = "cpu" if device == "cpu" else "gpu"
        with self.fast_cuda_checks(self.device_config(accelerator, 1)):
            module, optimizer = fabric.setup(model, model.bench_optimizer)
            history = []
            for _ in range(epochs):
                losses = []
                for x, y in fabric.setup_dataloaders(loader):
                    optimizer.zero_grad()
                    loss = loss_fn(module(x), y)
                    fabric.backward(loss)
                    optimizer.step()
                    losses.append(loss.detach())
                history.append(torch.stack(losses).tolist())
        model.bench_epoch_loss = sum(history[-1]) / len(history[-1])
        if device != "cpu":
            model.cpu()


class PyBlaze(Contender):
    """The original PyBlaze (PyPI ``pyblaze`` 2.x): ``MLEEngine(model).train(...)``.

    PyBlaze 2.x's ``Estimator`` needs an ``engine`` property written by hand, so the engine is
    built explicitly, which is what ``Estimator.fit`` does. No compatibility shim is needed with
    torch 2.14: ``pyblaze==2.3.2`` imports and trains unchanged.
    """

    name = "pyblaze"

    def __init__(self) -> None:
        import pyblaze.nn as pxnn
        import pyblaze.nn.functional as PX

        self.pxnn, self.PX = pxnn, PX

    def fit(self, model: nn.Module, loader: DataLoader, epochs: int, device: str) -> None:
        engine = self.pxnn.MLEEngine(model)
        engine.train(
            loader,
            epochs=epochs,
            optimizer=model.bench_optimizer,
            loss=nn.CrossEntropyLoss(),
            gpu=device != "cpu",
        )

    def evaluate(self, model: nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
        engine = self.pxnn.MLEEngine(model)
        ev = engine.evaluate(
            loader,
            metrics={"accuracy": self.PX.accuracy, "f1": self.PX.f1_score},
            gpu=device != "cpu",
        )
        return {"accuracy": float(ev["accuracy"]), "f1": float(ev["f1"])}


CONTENDERS = {
    c.name: c
    for c in (
        Hand,
        Lightning,
        PyBlazePL,
        PyBlazePLTrainer,
        PyBlaze,
        HandAfterLightningImport,
        FabricPrototype,
    )
}


def new_model(contender: Contender, workload: str, seed: int) -> nn.Module:
    """The workload's model with weights from ``seed`` and an Adam optimizer (same for all)."""
    torch.manual_seed(seed)
    model = contender.build(workload)
    # Lightning builds its own (identical) Adam in configure_optimizers.
    model.bench_optimizer = torch.optim.Adam(model.parameters())
    return model


def sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def run_train(contender: Contender, job: str, size: common.Size, seed: int, device: str) -> dict:
    workload = "a" if job == "gpu" else job
    dataset = common.make_dataset(workload, size.samples, seed)
    probes = []
    for i in range(2):  # 0: warm-up (untimed), 1: the fixed cost of one call on one batch
        model = new_model(contender, workload, seed + 100 + i)
        loader = common.one_batch_loader(dataset, size.batch_size)
        gc.collect()
        start = time.perf_counter()
        contender.fit(model, loader, 1, device)
        sync(device)
        probes.append(time.perf_counter() - start)
    model = new_model(contender, workload, seed)
    loader = common.train_loader(dataset, size.batch_size, seed)
    gc.collect()
    start = time.perf_counter()
    contender.fit(model, loader, size.epochs, device)
    sync(device)
    seconds = time.perf_counter() - start
    steps = len(loader) * size.epochs
    return {
        "seconds": seconds,
        "fixed_seconds": probes[1],
        "steps": steps,
        "samples": size.samples * size.epochs,
        "checksum": common.checksum(model),
    }


def run_evaluate(contender: Contender, job: str, size: common.Size, seed: int, device: str) -> dict:
    factor = 10 if job == "c10" else 1
    dataset = common.CyclicImages(size.samples * factor, pool=size.batch_size, seed=seed)
    model = new_model(contender, "c", seed)
    contender.evaluate(model, common.one_batch_loader(dataset, size.batch_size), device)  # warm-up
    loader = DataLoader(dataset, batch_size=size.batch_size)
    gc.collect()
    before = common.rss_mb()
    exact = common.reset_peak_rss()
    if not exact:  # fall back to the lifetime peak (coarser: includes earlier peaks)
        import resource

        before = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    start = time.perf_counter()
    values = contender.evaluate(model, loader, device)
    sync(device)
    seconds = time.perf_counter() - start
    if exact:
        peak = common.peak_rss_mb()
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "samples": len(dataset),
        "batch_size": size.batch_size,
        "rss_before_mb": before,
        "peak_delta_mb": peak - before,
        "peak_method": "VmHWM reset" if exact else "ru_maxrss",
        **values,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("jobs", help="comma-separated: a, b, c1, c10, gpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=sorted(common.SIZES), default="full")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    common.set_threads(args.threads)
    try:
        contender = CONTENDERS[args.contender]()
    except ImportError as e:
        print(MARKER + json.dumps({"contender": args.contender, "skipped": f"{e}"}), flush=True)
        return 0
    # Lightning's info lines (tips, "`Trainer.fit` stopped") only clutter the output.
    import logging

    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sizes = common.SIZES[args.scale]
    for job in args.jobs.split(","):
        if job in ("a", "b", "gpu"):
            result = run_train(contender, job, sizes[job], args.seed, args.device)
        elif job in ("c1", "c10"):
            if type(contender).evaluate is Contender.evaluate:
                result = {"skipped": "not a contender of workload (c)"}
            else:
                result = run_evaluate(contender, job, sizes["c"], args.seed, args.device)
        else:
            parser.error(f"Expected jobs among a, b, c1, c10, gpu. Received: {job!r}.")
        result.update(contender=args.contender, job=job, threads=torch.get_num_threads())
        print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
