"""Training with sleap-nn: the config a job's hyperparameters make, one sleap-nn run per model
(two for top-down: centroid, then centered instance), and an `epoch` report as each epoch
ends, taken from the metrics sleap-nn's Lightning module logs.

sleap-nn is imported lazily (about 5 s): configuration and data errors are reported first.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import TrainConfig

log = logging.getLogger("pose.training")

# One sleap-nn run per stage; top-down trains its two models one after the other.
STAGES = {
    "single_instance": ("single_instance",),
    "bottomup": ("bottomup",),
    "topdown": ("centroid", "centered_instance"),
}
# Images cached in memory for training when they fit in this many bytes (else read from the
# videos at every step).
MEMORY_CACHE_LIMIT = 4 << 30


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    epochs: int
    loss: float | None
    val_loss: float | None
    lr: float | None
    duration_seconds: float


@dataclass
class StageResult:
    stage: str
    run_dir: Path
    epochs: list[EpochMetrics] = field(default_factory=list)
    config: Any = None  # the sleap-nn config after its setup (DictConfig)


@dataclass
class TrainResult:
    stages: list[StageResult]

    @property
    def run_dirs(self) -> list[Path]:
        return [s.run_dir for s in self.stages]

    @property
    def final(self) -> EpochMetrics | None:
        last = self.stages[-1].epochs
        return last[-1] if last else None


def stage_dirs(model_type: str, sleap_dir: Path) -> list[Path]:
    """Where each stage's sleap-nn run dir lives under the model dir's sleap_model/."""
    stages = STAGES[model_type]
    return [sleap_dir] if len(stages) == 1 else [sleap_dir / s for s in stages]


def head_config(stage: str, config: TrainConfig, nodes: list[str]) -> dict[str, Any]:
    confmaps: dict[str, Any] = {"sigma": config.sigma, "output_stride": config.output_stride}
    if stage in ("centroid", "centered_instance"):
        # The centroid is the anchor node, or the middle of the instance's bounding box.
        confmaps["anchor_part"] = config.anchor_part
    if stage == "bottomup":
        # Part affinity fields at the confidence maps' stride, sleap-nn's default spread.
        return {
            "bottomup": {
                "confmaps": confmaps,
                "pafs": {"output_stride": config.output_stride},
            }
        }
    return {stage: {"confmaps": confmaps}}


def augmentation_options(config: TrainConfig) -> dict[str, Any]:
    """sleap-nn's own presets: random rotation (±15° by default), scale 0.9-1.1, contrast and
    brightness changes, uniform noise."""
    if not config.augmentation:
        return {"use_augmentations_train": False, "intensity_aug": None, "geometry_aug": None}
    return {
        "use_augmentations_train": True,
        "intensity_aug": ["uniform_noise", "contrast", "brightness"],
        "geometry_aug": ["rotation", "scale"],
    }


def sleap_config(
    config: TrainConfig,
    stage: str,
    *,
    nodes: list[str],
    labels_path: Path,
    run_dir: Path,
    validation: bool,
    cache_in_memory: bool = True,
) -> Any:
    """The sleap-nn training config (an OmegaConf DictConfig) for one stage of the job.

    An epoch is one pass over the training frames (sleap-nn's default of at least 200 steps
    per epoch is for real datasets; `min_train_steps_per_epoch=1` makes `epochs` mean what it
    says). Without a validation split (validation_fraction 0) sleap-nn still needs one: the
    training frames are used (`use_same_data_for_val`), and val_loss is not reported.
    """
    from sleap_nn.config.get_config import (  # noqa: PLC0415
        get_data_config,
        get_model_config,
        get_trainer_config,
    )
    from sleap_nn.config.training_job_config import TrainingJobConfig  # noqa: PLC0415

    data_config = get_data_config(
        train_labels_path=[str(labels_path)],
        validation_fraction=config.validation_fraction if validation else 0.1,
        use_same_data_for_val=not validation,
        data_pipeline_fw=("torch_dataset_cache_img_memory" if cache_in_memory else "torch_dataset"),
        scale=config.input_scale,
        **augmentation_options(config),
    )
    model_config = get_model_config(
        backbone_config=config.backbone,
        head_configs=head_config(stage, config, nodes),
    )
    trainer_config = get_trainer_config(
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        learning_rate=config.learning_rate,
        seed=config.seed,
        save_ckpt=True,
        ckpt_dir=str(run_dir.parent),
        run_name=run_dir.name,
        trainer_accelerator="auto",
        enable_progress_bar=False,
        min_train_steps_per_epoch=1,
    )
    job = TrainingJobConfig(
        data_config=data_config, model_config=model_config, trainer_config=trainer_config
    )
    return job.to_sleap_nn_cfg()


def _epoch_reporter(report: Callable[[Any, Any, float], None]) -> Any:
    """A Lightning callback that reports each finished epoch.

    It is a `Checkpoint` (which does nothing by itself) only so that Lightning calls its
    `on_train_epoch_end` after the LightningModule's own hook, where sleap-nn logs the
    epoch's train/loss and train/lr; val/loss was logged by the validation loop before.
    """
    from lightning.pytorch.callbacks import Checkpoint  # noqa: PLC0415

    class EpochReporter(Checkpoint):
        def __init__(self) -> None:
            super().__init__()
            self._started = time.monotonic()

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._started = time.monotonic()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking or not trainer.is_global_zero:
                return
            report(trainer, pl_module, time.monotonic() - self._started)

    return EpochReporter()


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _model_trainer_class() -> type:
    from sleap_nn.training.model_trainer import ModelTrainer  # noqa: PLC0415

    class ReportingModelTrainer(ModelTrainer):
        """sleap-nn's trainer with extra Lightning callbacks (it has no option for them)."""

        extra_callbacks: tuple[Any, ...] = ()

        def _setup_loggers_callbacks(self, viz_train_dataset: Any, viz_val_dataset: Any) -> Any:
            loggers, callbacks = super()._setup_loggers_callbacks(
                viz_train_dataset, viz_val_dataset
            )
            return loggers, [*callbacks, *self.extra_callbacks]

    return ReportingModelTrainer


def _cache_fits(labels: Any) -> bool:
    total = 0
    for lf in labels.labeled_frames:
        shape = lf.video.shape
        if shape is None:
            return False
        _, height, width, channels = shape
        total += height * width * channels * max(1, len(lf.instances))
    return total <= MEMORY_CACHE_LIMIT


def train_pose_model(
    config: TrainConfig,
    *,
    train: Any,
    validation: Any | None,
    labels_path: Path,
    nodes: list[str],
    sleap_dir: Path,
    on_epoch: Callable[[EpochMetrics], None],
) -> TrainResult:
    """Train every stage of `config.model_type` into sleap_dir; `on_epoch` hears each epoch as
    it ends, numbered across stages (top-down: 1..N centroid, N+1..2N centered instance)."""
    import lightning.pytorch as pl  # noqa: PLC0415
    import torch  # noqa: PLC0415

    stages = STAGES[config.model_type]
    total_epochs = config.epochs * len(stages)
    trainer_class = _model_trainer_class()
    cache = _cache_fits(train) and (validation is None or _cache_fits(validation))
    results = []
    for index, (stage, run_dir) in enumerate(
        zip(stages, stage_dirs(config.model_type, sleap_dir), strict=True)
    ):
        offset = index * config.epochs
        result = StageResult(stage=stage, run_dir=run_dir)

        def report(
            trainer: Any, pl_module: Any, seconds: float, result: Any = result, offset: int = offset
        ) -> None:
            metrics = trainer.callback_metrics
            # The learning rate this epoch ran with (the scheduler steps after this hook);
            # the optimizer's own float, not the float32 that sleap-nn logs as train/lr.
            if trainer.optimizers:
                lr = float(trainer.optimizers[0].param_groups[0]["lr"])
            else:
                lr = _number(metrics.get("train/lr"))
            epoch = EpochMetrics(
                epoch=offset + trainer.current_epoch + 1,
                epochs=total_epochs,
                loss=_number(metrics.get("train/loss")),
                val_loss=_number(metrics.get("val/loss")) if validation is not None else None,
                lr=lr,
                duration_seconds=round(seconds, 3),
            )
            result.epochs.append(epoch)
            on_epoch(epoch)

        cfg = sleap_config(
            config,
            stage,
            nodes=nodes,
            labels_path=labels_path,
            run_dir=run_dir,
            validation=validation is not None,
            cache_in_memory=cache,
        )
        pl.seed_everything(config.seed, workers=True, verbose=False)
        trainer = trainer_class.get_model_trainer_from_config(
            cfg,
            train_labels=[train],
            val_labels=None if validation is None else [validation],
        )
        trainer.extra_callbacks = (_epoch_reporter(report),)
        log.info("training %s (%s) into %s", stage, config.backbone, run_dir)
        trainer.train()
        result.config = trainer.config
        results.append(result)
        del trainer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return TrainResult(stages=results)


def inference_device() -> str:
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_input(result: TrainResult) -> dict[str, int]:
    """The frame size and channels the (first stage's) model takes, after sleap-nn's setup."""
    cfg = result.stages[0].config
    preprocessing = cfg.data_config.preprocessing
    backbone = next(k for k, v in cfg.model_config.backbone_config.items() if v is not None)
    return {
        "height": int(preprocessing.max_height),
        "width": int(preprocessing.max_width),
        "channels": int(cfg.model_config.backbone_config[backbone].in_channels),
    }
