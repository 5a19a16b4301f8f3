"""Torch modules and train loops for the DDP tests (a module, so workers import them)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch


class Classifier(torch.nn.Module):
    """A small MLP over 8 features, two classes."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conveyor_init = {"width": width}
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


def cross_entropy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(X), y)


def digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().numpy().tobytes())
    return h.hexdigest()


class RecordingLoop:
    """A train loop writing, before each step, a digest of the rank's weights (the
    weights after the previous step), and optionally stalling after `stall_after` steps."""

    def __init__(self, folder: str, stall_after: int | None = None) -> None:
        self.folder = folder
        self.stall_after = stall_after

    def __call__(self, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from conveyor.training.distributed import current_rank

        info = current_rank()
        assert info is not None
        inner = getattr(model, "module", model)
        if inner.training:
            folder = Path(self.folder)
            count = len(list(folder.glob(f"rank{info.rank}-pid{os.getpid()}-*")))
            tag = f"rank{info.rank}-pid{os.getpid()}-{count:05d}-ws{info.world_size}"
            (folder / tag).write_text(digest(inner))
            if (
                self.stall_after is not None
                and info.rank == 1
                and count == self.stall_after
                and not list(folder.glob("stalled-*"))
            ):
                (folder / f"stalled-{os.getpid()}").touch()
                while True:  # the work: hold the job here until this worker is killed
                    time.sleep(0.05)
        return cross_entropy(model, X, y)


def fast_adam(parameters: object) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=1e-2)  # type: ignore[arg-type]


def adam(parameters: object, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=lr)  # type: ignore[arg-type]


class SlowRank:
    """A train loop in which rank 1 spends `seconds` in its step `at` (the work: a rank
    that stops making progress for longer than the job's collective timeout). It writes
    `marker` just before."""

    def __init__(self, at: int, seconds: float, marker: str) -> None:
        self.at = at
        self.seconds = seconds
        self.marker = marker
        self.calls = 0

    def __call__(self, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from conveyor.training.distributed import current_rank

        info = current_rank()
        self.calls += 1
        if info is not None and info.rank == 1 and self.calls == self.at:
            Path(self.marker).touch()
            time.sleep(self.seconds)
        return cross_entropy(model, X, y)
