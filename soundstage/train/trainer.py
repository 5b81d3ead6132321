"""The shared training loop: one accelerate loop for every component (codec, ELSA, DiT).

A component supplies a :class:`TrainTask` (its model, dataset, loss and validation, and optionally the placement of
its other modules, parameter groups and extra checkpointed state); the loop owns everything generic: AdamW with
warmup + cosine decay, gradient accumulation and clipping, an EMA copy of the weights, logs and a training-curve
plot, validation of the EMA (main process), checkpoints and exact resume, and export of the EMA weights.

Exact resume: a checkpoint (``out_dir/checkpoints/step_N``, written to a temporary folder and renamed, so a kill
while saving leaves the previous one intact) holds the model, EMA, optimiser, scheduler, RNG states and the loop
state. Data comes from :class:`StreamSampler`, a stream of indices that is a pure function of (seed, position);
datasets draw all randomness of item ``i`` from ``default_rng((seed, i))``, so a resumed run sees exactly the
batches an uninterrupted one would have seen. Multi-GPU: run under ``accelerate launch``; each process takes every
``world_size``-th stream position.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from soundstage.common.pretrained import config_to_dict
from soundstage.data.workers import loader_worker_init

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "model"
LOG_NAME = "train_log.jsonl"
MODEL_CONFIG_NAME = "model_config.json"
CURVE_NAME = "training_curve.png"


@dataclass
class TrainConfig:
    """Generic loop settings; each component keeps per-preset values (e.g. ``CODEC_TRAIN_DEFAULTS``)."""

    out_dir: Path
    max_steps: int = 1000  # optimiser steps
    batch_size: int = 8  # per process and micro-batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimiser step (effective batch: batch x this x GPUs)
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100  # linear warmup, then cosine decay to zero at max_steps
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    ema_decay: float = 0.999
    log_every: int = 10
    validate_every: int = 500
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    num_workers: int = 0
    seed: int = 0
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" (accelerate)
    max_bad_steps: int = 20  # consecutive non-finite losses tolerated (skipped) before the run stops
    train_only: tuple[str, ...] = ()  # parameter-name prefixes to train, the rest frozen (empty: train everything)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.train_only = tuple(self.train_only)
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "log_every", "validate_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")


class TrainTask(Protocol):
    """What a component supplies to :func:`run_training`.

    Optional methods, called when present:
        ``setup(accelerator)``: place and prepare every module the task holds besides ``model`` (a discriminator, a
        frozen encoder or codec: ``.to(accelerator.device)``, frozen ones ``.eval().requires_grad_(False)``);
        called once, after the model is prepared and before a checkpoint is restored.
        ``param_groups() -> list[dict]``: AdamW parameter groups of ``model`` (``params`` and optionally ``lr``,
        ``weight_decay``; the config's values otherwise); each group's rate follows the warmup and cosine schedule.
        ``extra_state() -> list``: objects with ``state_dict``/``load_state_dict`` that the task trains besides its
        model (e.g. an adversary and its optimiser), saved in and restored from every checkpoint.
    """

    name: str
    model: nn.Module
    train_dataset: Dataset

    def collate(self, items: list[Any]) -> Any: ...

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss of one micro-batch and floats to log; ``model`` may be wrapped by accelerate."""
        ...

    def validate(self, model: nn.Module, step: int, writer: Any | None) -> dict[str, float]:
        """Metrics of the EMA model (eval mode, no grad, main process); may add audio or figures to a TensorBoard
        writer."""
        ...


def extra_checkpoint_state(task: TrainTask) -> list[Any]:
    """The task's optional ``extra_state()`` (see :class:`TrainTask`), or nothing."""
    extra = getattr(task, "extra_state", None)
    return list(extra()) if callable(extra) else []


def param_groups(task: TrainTask) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: the task's optional ``param_groups()`` or one group of the whole model, less
    frozen parameters (``requires_grad`` false, e.g. by ``train_only``); empty groups are dropped.

    Raises ``ValueError`` naming the trainable parameters that no group holds (they would silently stay put)."""
    custom = getattr(task, "param_groups", None)
    groups = custom() if callable(custom) else [{"params": task.model.parameters()}]
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    held = {id(p) for g in groups for p in g["params"]}
    missing = [n for n, p in task.model.named_parameters() if p.requires_grad and id(p) not in held]
    if missing:
        raise ValueError(f"{task.name}: param_groups() leaves out trainable parameters: {', '.join(missing)}")
    return [g for g in groups if g["params"]]


class StreamSampler(Sampler[int]):
    """Endless, resumable stream of dataset indices (see the module docstring)."""

    def __init__(self, num_items: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if num_items < 1:
            raise ValueError("the training dataset is empty")
        self.num_items, self.seed, self.start, self.rank, self.world_size = num_items, seed, start, rank, world_size

    def index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_items)
        permutation = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
        return epoch * self.num_items + int(permutation[offset])

    def __iter__(self) -> Iterator[int]:
        position = self.start + self.rank
        while True:
            yield self.index_at(position)
            position += self.world_size


@dataclass
class LoopState:
    """Counters saved with every checkpoint."""

    step: int = 0
    samples_seen: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # validation metrics, for the curve plot

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "samples_seen": self.samples_seen, "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.samples_seen = int(state["step"]), int(state["samples_seen"])
        self.history = json.loads(state["history"])


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors inside dicts/lists/tuples to ``device``; leave everything else as is."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete ``checkpoints/step_N`` folder, or None."""
    folders = [p for p in (Path(out_dir) / CHECKPOINT_DIR).glob("step_*") if p.is_dir() and p.name[5:].isdigit()]
    return max(folders, key=lambda p: int(p.name[5:]), default=None)


def check_model_config(model: nn.Module, out_dir: Path, resuming: bool) -> None:
    """Record the model's config in ``out_dir/model_config.json``; when resuming, refuse a model built differently.

    Checkpoints hold weights, not the settings that give them meaning: a run resumed with another ``--set`` or after
    a preset changed would load without complaint and go on as a different model.
    """
    path = out_dir / MODEL_CONFIG_NAME
    current = config_to_dict(model.config)
    if resuming and path.exists():
        saved = json.loads(path.read_text())
        differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if differ:
            changes = ", ".join(f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in differ)
            raise ValueError(
                f"{out_dir} was started with another model config ({changes}); resume it with the settings it was "
                "started with (--preset, --set) or choose another --out"
            )
    path.write_text(json.dumps(current, indent=2) + "\n")


def freeze_all_but(model: torch.nn.Module, prefixes: tuple[str, ...]) -> int:
    """Train only the parameters whose names start with one of ``prefixes``; returns how many values stay trainable.

    Raises ``ValueError`` naming the model's top-level modules when a prefix matches no parameter (a typo would
    otherwise freeze everything)."""
    names = [name for name, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unmatched:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"--train-only {', '.join(unmatched)} matches no parameter; names start with: "
                         f"{', '.join(tops)} (e.g. {names[0]})")
    trainable = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefixes))
        trainable += param.numel() if param.requires_grad else 0
    return trainable


@dataclass
class _Run:
    """What a run holds while it trains (built by :func:`_start_run`)."""

    task: TrainTask
    config: TrainConfig
    accelerator: Any
    model: nn.Module  # as prepared by accelerate
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: Any
    state: LoopState
    writer: Any | None  # TensorBoard, main process only

    @property
    def log_file(self) -> Path:
        return self.config.out_dir / LOG_NAME


def run_training(task: TrainTask, config: TrainConfig, resume: bool = False) -> Path:
    """Train ``task.model`` for ``config.max_steps`` optimiser steps; returns the folder of the exported EMA weights.

    Raises ``FileExistsError`` when ``out_dir`` holds a run and ``resume`` is false, ``FloatingPointError`` after
    ``config.max_bad_steps`` consecutive non-finite losses."""
    checkpoint = _prepare_out_dir(task, config, resume)
    run = _start_run(task, config, checkpoint)
    batches = iter(_loader(run))
    bad_steps = 0
    # closed on any exception too, so that the bar is not redrawn after the command's last message (Ctrl-C)
    with tqdm(total=config.max_steps, initial=run.state.step, desc=f"train {task.name}",
              disable=not run.accelerator.is_main_process, dynamic_ncols=True) as bar:
        while run.state.step < config.max_steps:
            record = _optimizer_step(run, batches)
            if record is None:
                bad_steps += 1
                if bad_steps >= config.max_bad_steps:
                    raise FloatingPointError(
                        f"{bad_steps} consecutive non-finite losses at step {run.state.step}; lower the learning "
                        f"rate or check the data, then resume from {latest_checkpoint(config.out_dir)}"
                    )
                continue
            bad_steps = 0
            bar.update(1)
            _after_step(run, record, bar)
    run.accelerator.end_training()
    return config.out_dir / EXPORT_DIR


def _prepare_out_dir(task: TrainTask, config: TrainConfig, resume: bool) -> Path | None:
    """Check ``out_dir`` against ``resume``, record the model and loop configs; returns the checkpoint to resume."""
    out_dir = config.out_dir
    checkpoint = latest_checkpoint(out_dir)
    if resume and checkpoint is None:
        logger.warning("--resume: no checkpoint in %s, starting from scratch", out_dir / CHECKPOINT_DIR)
    if not resume and checkpoint is not None:
        raise FileExistsError(
            f"{out_dir} already holds checkpoints; pass --resume to continue that run or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    check_model_config(task.model, out_dir, resuming=checkpoint is not None)
    (out_dir / "train_config.json").write_text(json.dumps(asdict(config), default=str, indent=2) + "\n")
    return checkpoint


def _start_run(task: TrainTask, config: TrainConfig, checkpoint: Path | None) -> _Run:
    """Accelerator, optimiser, schedule and EMA; the task's ``setup``; the checkpoint restored when given."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    # The schedule steps once per optimiser step, however many processes (accelerate's default would step it
    # num_processes times, ending the cosine early under `accelerate launch`).
    accelerator = Accelerator(log_with="tensorboard", project_dir=str(config.out_dir),
                              mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False,
                              gradient_accumulation_steps=config.gradient_accumulation_steps)
    set_seed(config.seed)
    if config.train_only:
        trainable = freeze_all_but(task.model, config.train_only)
        logger.info("training %d of %d parameters (%s)", trainable, sum(p.numel() for p in task.model.parameters()),
                    ", ".join(config.train_only))
    ema = AveragedModel(task.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(param_groups(task), lr=config.learning_rate, betas=config.betas,
                                  weight_decay=config.weight_decay)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=config.warmup_steps,
                              num_training_steps=config.max_steps)
    model, optimizer, scheduler = accelerator.prepare(task.model, optimizer, scheduler)
    ema.to(accelerator.device)
    setup = getattr(task, "setup", None)
    if callable(setup):
        setup(accelerator)
    state = LoopState()
    accelerator.register_for_checkpointing(ema, state, *extra_checkpoint_state(task))
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        logger.info("resumed from %s (step %d)", checkpoint, state.step)
    accelerator.init_trackers(task.name)
    return _Run(task, config, accelerator, model, ema, optimizer, scheduler, state, _tensorboard_writer(accelerator))


def _loader(run: _Run) -> DataLoader:
    """Batches of the stream from the run's position, this process's share."""
    config = run.config
    sampler = StreamSampler(
        len(run.task.train_dataset),  # type: ignore[arg-type]
        config.seed,
        start=run.state.samples_seen,
        rank=run.accelerator.process_index,
        world_size=run.accelerator.num_processes,
    )
    return DataLoader(
        run.task.train_dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=run.task.collate,
        num_workers=config.num_workers,
        # Own generator: creating the iterator must not consume the global RNG restored from the checkpoint.
        generator=torch.Generator().manual_seed(config.seed),
        persistent_workers=config.num_workers > 0,
        worker_init_fn=loader_worker_init,  # workers die with the run: kill -9 leaves no orphan
    )


def _optimizer_step(run: _Run, batches: Iterator[Any]) -> dict[str, float] | None:
    """One optimiser step over ``gradient_accumulation_steps`` micro-batches, then the EMA update; returns the
    training record (losses and logs averaged over the micro-batches), or None when a loss was not finite (the step
    is skipped, its batches consumed)."""
    accelerator, state, config = run.accelerator, run.state, run.config
    losses: list[float] = []
    logs: list[dict[str, float]] = []
    run.model.train()
    for _ in range(config.gradient_accumulation_steps):
        batch = to_device(next(batches), accelerator.device)
        with accelerator.accumulate(run.model):
            with accelerator.autocast():
                loss, step_logs = run.task.training_step(run.model, batch, state.step)
            state.samples_seen += config.batch_size * accelerator.num_processes
            losses.append(loss.item())
            logs.append(step_logs)
            if math.isfinite(losses[-1]):
                accelerator.backward(loss)
    if not all(math.isfinite(x) for x in losses):
        logger.warning("step %d: non-finite loss (%s), step skipped", state.step, losses)
        run.optimizer.zero_grad(set_to_none=True)
        return None
    grad_norm = (accelerator.clip_grad_norm_(run.model.parameters(), config.grad_clip)
                 if config.grad_clip > 0 else None)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.ema.update_parameters(accelerator.unwrap_model(run.model))
    state.step += 1
    record = {"step": state.step, "loss": _mean(losses), "lr": run.scheduler.get_last_lr()[0],
              **{k: _mean([entry[k] for entry in logs]) for k in logs[0]}}
    if grad_norm is not None:
        record["grad_norm"] = float(grad_norm)
    return record


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _after_step(run: _Run, record: dict[str, float], bar: Any) -> None:
    """Log, validate, checkpoint and export when the step calls for it (and always after the last step)."""
    step, config = run.state.step, run.config
    last = step == config.max_steps
    if step % config.log_every == 0 or last:
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if run.accelerator.is_main_process:
            run.accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)
            _append_log(run.log_file, record)
    if (step % config.validate_every == 0 or last) and run.accelerator.is_main_process:
        _validate_and_log(run)
    if step % config.checkpoint_every == 0 or last:
        _save_checkpoint(run.accelerator, config.out_dir, step, config.keep_checkpoints)
        if run.accelerator.is_main_process:
            run.ema.module.save_pretrained(config.out_dir / EXPORT_DIR)  # type: ignore[operator]
            plot_training_curve(run.log_file, config.out_dir / CURVE_NAME)


def _validate_and_log(run: _Run) -> None:
    """Validate the EMA model (eval mode, no grad) and log its metrics; main process only."""
    step, model = run.state.step, run.ema.module
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in run.task.validate(model, step, run.writer).items()}
    if metrics:
        run.accelerator.log({f"valid/{k}": v for k, v in metrics.items()}, step=step)
        run.state.history.append({"step": step, **metrics})
        _append_log(run.log_file, {"step": step, "valid": metrics})


def _append_log(log_file: Path, record: dict[str, Any]) -> None:
    with log_file.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _tensorboard_writer(accelerator: Any) -> Any | None:
    try:
        return accelerator.get_tracker("tensorboard", unwrap=True)
    except Exception:  # noqa: BLE001 -- accelerate raises various types when there is no tracker (non-main processes)
        return None


def _save_checkpoint(accelerator: Any, out_dir: Path, step: int, keep: int) -> None:
    root = out_dir / CHECKPOINT_DIR
    final = root / f"step_{step}"
    tmp = root / f".tmp_step_{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        old = sorted((p for p in root.glob("step_*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:]))
        for folder in old[:-keep]:
            shutil.rmtree(folder, ignore_errors=True)


def read_train_log(log_file: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, validation records) from a ``train_log.jsonl``; a resumed run's replayed steps dedupe."""
    train: dict[int, dict[str, Any]] = {}
    valid: dict[int, dict[str, Any]] = {}
    if log_file.exists():
        for line in log_file.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if "valid" in record:
                valid[record["step"]] = {"step": record["step"], **record["valid"]}
            else:
                train[record["step"]] = record
    return [train[k] for k in sorted(train)], [valid[k] for k in sorted(valid)]


def plot_training_curve(log_file: Path, png: Path) -> None:
    """Plot the training loss and each validation metric (a panel each, so their scales do not mix) against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, valid = read_train_log(log_file)
    if not train:
        return
    series = {}
    for key in sorted({k for r in valid for k in r if k != "step"}):
        points = [(r["step"], r[key]) for r in valid if key in r and math.isfinite(r[key])]
        if points:
            series[key] = points
    columns = min(4, 1 + len(series))
    rows = math.ceil((1 + len(series)) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    loss_ax = axes[0, 0]
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8)
    loss_ax.set(xlabel="step", title="training loss")
    if all(r["loss"] > 0 for r in train):
        loss_ax.set_yscale("log")
    for ax, (key, points) in zip(axes.flat[1:], series.items()):
        ax.plot(*zip(*points), marker="o", ms=3)
        ax.set(xlabel="step", title=f"valid: {key}")
        ax.title.set_fontsize(9)
    for ax in axes.flat[1 + len(series):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
