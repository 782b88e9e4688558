"""The Family protocol: what a model family gives the generic trainer (``lib.train``) and the embedder (``lib.embed``).

A *family* (``dual_stream`` = Part One, ``instance`` = Part Two) is an object implementing :class:`Family`. It is
found by name with :func:`get_family` (``get_family(cfg.family)``). Each family package
(``lib/families/<name>/``) registers one object with :func:`register` in its ``family`` module: its configuration
sections, its model builder, its data, losses and scoring rule all hang off that one object.
``lib/families/__init__.py`` imports every family package statically, so the registry is complete as soon as
``lib.families`` is imported (timm style): no import strings.

The trainer (``lib/train``) drives every family the same way::

    fam = get_family(cfg.family)
    ds = fam.train_dataset(cfg, ctx, train_ids)           # a torch Dataset, items addressed by SampleKey
    model = create_model(cfg, **ds.model_kwargs)            # = fam.build_model; {"num_classes": ...}
    opt, sched = fam.optimizer_and_scheduler(model, cfg, steps_per_epoch)
    for step ...:                                          # global batch -> this rank's shard
        batch = fam.collate([ds[SampleKey(i, seed)] for ...])   (through a DataLoader)
        loss, logs = fam.compute_loss(model, batch, step)  # model may be DDP-wrapped
    gallery = fam.embed_gallery(model, cfg, ctx, tracks)  # [N, D]; frames_per_track=k for validation
    queries = fam.embed_queries(model, cfg, fam.query_sentences(cfg, ctx, ids))  # [Q, S, D]
    scores = fam.similarity(queries, gallery)                                     # [Q, N]

Rules every family follows:

- **Determinism by key.** Dataset items are addressed by :class:`SampleKey` ``(index, seed)``: every random choice
  of a sample (frame, sentence, augmentation) comes from ``seed`` alone (``np.random.default_rng(key.seed)`` or a
  ``torch.Generator`` seeded with it), never from global RNG state. The trainer derives the seeds from the run seed
  and the step, so a resumed run sees exactly the same samples, with any number of DataLoader workers.
- **Model kwargs.** ``train_dataset`` returns a dataset with a ``model_kwargs`` dict (JSON-serialisable, e.g. the
  number of ID classes); the trainer passes it to ``build_model`` and stores it in the checkpoint's metadata so
  :func:`lib.families.load_trained_model` rebuilds the same architecture.
- **Distributed.** ``compute_loss`` receives the (possibly DistributedDataParallel-wrapped) model and this rank's
  shard of the global batch; it must call the model's ``forward`` through the wrapper, and gather whatever the loss
  needs across ranks with gradient (:func:`lib.distributed.gather_with_grad`, identity in one process) so the
  loss is the global-batch loss.
- **Optional hooks.** ``loss_factor(cfg, step, steps_per_epoch, n_samples) -> float``: when a family defines it,
  the trainer multiplies the loss of step ``step`` by it (Part Two's published warm-up is a factor on the loss, not
  on the learning rate; ``n_samples`` = ``len(dataset)``).
- **Embedding.** ``embed_gallery`` returns one row per track in the order of ``tracks`` (a ``{uuid: track}`` dict
  in CityFlow-NL format); ``embed_queries`` returns ``[Q, S, D]`` (each sentence's embedding; the family's
  ``similarity`` decides how sentences combine). Both run in ``eval`` mode under ``torch.no_grad`` and leave the
  model's mode as they found it.

``TrainContext`` carries the run's environment (data root, preparation folder, device, workers, caches, rank).

:class:`BaseTrainCfg` holds the training fields every family's ``train`` section has (families subclass it).

Steps are the unit of everything: one step = one optimizer update on one *global* batch (``batch_size`` samples,
split evenly over the DDP ranks). One epoch = one pass over the train split = ``len(train) // batch_size`` steps
with ``drop_last`` (the last partial batch dropped), ``ceil(len(train) / batch_size)`` without.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from lib.cityflow import Layout, load_tracks
from lib.prep import cache_dir as prep_cache_dir

if TYPE_CHECKING:
    import torch

    from lib.config import RunConfig


class SampleKey(NamedTuple):
    """Address of one training sample: the dataset index and the seed of all its random choices."""

    index: int
    seed: int


@dataclass
class TrainContext:
    """Where a run reads its inputs and how it runs: shared by training, validation and embedding."""

    data_root: Layout
    prep_dir: Path
    device: torch.device
    workers: int = 0
    cache_dir: Path | None = None  # default: prep_dir / "cache"
    rank: int = 0
    world_size: int = 1
    log: Callable[[str], None] = print
    progress: bool = True  # progress bars of the gallery passes (main process only)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.data_root, Layout):
            self.data_root = Layout.of(self.data_root)
        self.prep_dir = Path(self.prep_dir).expanduser().resolve()
        self.cache_dir = Path(self.cache_dir) if self.cache_dir is not None else prep_cache_dir(self.prep_dir)

    @classmethod
    def create(cls, data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str],
               device: torch.device | str | None = None, workers: int | None = None, **kw: Any) -> TrainContext:
        import torch

        if device is None:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if workers is None:
            workers = min(8, max(0, (os.cpu_count() or 1) - 1))
        return cls(data_root=Layout.of(data_root), prep_dir=Path(prep_dir), device=torch.device(device),
                   workers=workers, **kw)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def show_progress(self) -> bool:
        """Progress bars on: the main process, unless the run asked for none (``--no-progress``)."""
        return self.progress and self.is_main

    @cached_property
    def train_tracks(self) -> dict[str, dict[str, Any]]:
        """``train-tracks.json`` of the data root (read once)."""
        return load_tracks(self.data_root.train_tracks)

    @cached_property
    def test_tracks(self) -> dict[str, dict[str, Any]]:
        return load_tracks(self.data_root.test_tracks)


@runtime_checkable
class Family(Protocol):
    """The operations a model family provides (see the module docstring for the rules)."""

    name: str
    sections: Mapping[str, type]
    """The dataclasses of the configuration sections ``model``, ``data``, ``train``, ``embed``."""
    scoring_rule: str
    """How the ensemble scores this family's embeddings (``lib.ensemble.scores.RULES``): ``mean_dot`` or ``cosine``."""

    def build_model(self, cfg: RunConfig, **model_kwargs: Any) -> torch.nn.Module:
        """The one builder of this family's model (what :func:`lib.families.create_model` calls)."""
        ...

    def train_dataset(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> Any: ...

    def prepare(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> dict[str, Any]:
        """Build caches before training (called on rank 0 only, before ``train_dataset``); returns timings."""
        ...

    def collate(self, samples: list[Any]) -> Any: ...

    def compute_loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        ...

    def optimizer_and_scheduler(self, model: torch.nn.Module, cfg: RunConfig, steps_per_epoch: int
                                ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]: ...

    def total_steps(self, cfg: RunConfig, steps_per_epoch: int) -> int: ...

    def embed_gallery(self, model: torch.nn.Module, cfg: RunConfig, ctx: TrainContext,
                      tracks: dict[str, dict[str, Any]], frames_per_track: int | None | str = "config"
                      ) -> np.ndarray:
        """``[N, D]`` in the order of ``tracks``. ``frames_per_track``: ``"config"`` = the family's embedding
        setting (what ``lib.embed`` uses), None = every frame, k = at most k evenly spaced frames (validation)."""
        ...

    def embed_queries(self, model: torch.nn.Module, cfg: RunConfig, sentences_per_query: Sequence[Sequence[str]],
                      cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
        """``[Q, S, D]``. ``cache_dir``: where a family may keep frozen text features shared between configurations
        (the same numbers as without it); None = compute everything."""
        ...

    def query_sentences(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> list[list[str]]:
        """The sentences that query each (validation) train track, as the test queries would be given."""
        ...

    def similarity(self, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Scores ``[Q, N]`` from query features ``[Q, S, D]`` and gallery features ``[N, D]``."""
        ...


SECTIONS = ("model", "data", "train", "embed")
_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Register a family under ``family.name`` (each ``lib/families/<name>/family.py`` calls this once)."""
    missing = [s for s in SECTIONS if s not in family.sections]
    if missing:
        raise ValueError(f"family {family.name!r} must define configuration sections {missing}")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered family ``name`` (``import lib.families`` registers every family of the project)."""
    if name not in _FAMILIES:
        raise KeyError(f"unknown family {name!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def family_sections(name: str) -> Mapping[str, type]:
    """The section dataclasses of family ``name`` (the ``sections`` callback of :func:`lib.config.parse_config`)."""
    return get_family(name).sections


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` evenly spaced indices in ``range(n)`` (all of them when ``k`` is None or >= n); first and last kept."""
    if k is None or k >= n:
        return list(range(n))
    if k <= 0:
        raise ValueError(f"frames per track must be positive, got {k}")
    if k == 1:
        return [0]
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def mean_sentence_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Part One score: mean over a query's sentences of ``q . g`` -> ``[Q, N]``."""
    q = np.asarray(queries, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    if q.ndim != 3 or g.ndim != 2 or q.shape[-1] != g.shape[-1]:
        raise ValueError(f"expected queries [Q, S, D] and gallery [N, D], got {q.shape} and {g.shape}")
    return np.einsum("qsd,nd->qn", q, g) / q.shape[1]


# --- training fields every family shares ---------------------------------------------------------------
@dataclass
class BaseTrainCfg:
    batch_size: int = 64
    """Global batch size (all ranks together); must be divisible by the number of DDP processes."""
    lr: float = 0.01
    epochs: float | None = None
    """Length of the run in passes over the train split (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Length of the run in steps (wins over ``epochs``; the CLI's ``--max-steps`` wins over both)."""
    seed: int = 0
    val_every: int | None = None
    """Validate (val MRR) every this many steps (None: every ``val_every_epochs``). Always at the last step."""
    val_every_epochs: float = 1.0
    """Validation interval in passes over the train split, used when ``val_every`` is None."""
    ckpt_every: int | None = None
    """Write ``last.safetensors`` + ``state.pt`` every this many steps; None: at every validation."""
    log_every: int = 10
    val_frames_per_track: int | None = 8
    """Validation gallery: at most this many evenly spaced frames per track (None: every frame)."""
    amp: bool = False
    """bfloat16 autocast on CUDA for training and embedding: an opt-in speed switch (the published models ran in
    float32); ignored on CPU, which always runs in float32."""
    channels_last: bool = False
    """The model's weights in channels-last memory on CUDA (the crops arrive as NHWC, so the backbone's
    convolutions run in NHWC kernels, faster with amp); an opt-in speed switch, ignored on CPU."""
    train_on: Literal["split", "all"] = "split"
    """Train on the split's train tracks (val held out) or on every track of train-tracks.json (Part Two, published:
    no held-out val; its val MRR is then a training-fit number, labelled so in metrics.json)."""
    checkpoint: Literal["best_val_mrr", "final", "best_train_top1", "lowest_loss"] = "best_val_mrr"
    """Which weights become ``best.safetensors`` (what 05_embed embeds): the best val MRR; the final weights; the
    best mean training top-1 of a validation window (Part One's ``checkpoint_best.pth`` rule); or the original's
    ``net_last`` rule (Part Two: the lowest mean logged loss of a pass, kept at the next save every
    ``lowest_loss_save_every`` passes, the final weights when it falls after the last save)."""
    lowest_loss_save_every: float = 10.0
    """Passes between the saves of the ``lowest_loss`` rule (the original saved every 10 epochs)."""
    drop_last: bool = True
    """Drop the last partial batch of a pass (Part Two, published); False: a pass is ceil(n / batch_size) steps,
    the last one smaller (Part One, published). A last batch of a single sample is dropped either way (BatchNorm
    cannot train on one sample)."""
    workers: int | None = None
    """DataLoader worker processes (None: from the context / CLI)."""
    nl_other_views: bool = False
    """False (published: the 2021 release has none): training sentences are each track's ``nl``. True: the 2022
    release's ``nl_other_views`` are appended to them for the training samples (``lib.cityflow.with_other_views``;
    validation keeps ``nl``). Part One samples among the first ``data.sentences_sampled`` sentences of the plain
    text, so raise that to reach them; Part Two draws from all of a track's sentences."""
    colour_groups: int = 0
    """0 (published): batches are random runs of the pass's permutation. k > 0: a pass is cut into runs of k tracks
    whose sentences name the same main colour (``lib.text.attributes.parse_track``, no other label), shuffled, so the
    in-batch negatives share colours and the loss must separate them by type and manoeuvre; every track is still
    seen once a pass (``lib.train.sampler.grouped_order``). Not in the original: a CPU-recipe option."""
    grad_clip: float | None = None
