"""A synthetic CityFlow-NL: videos, tracks, sentences and queries in the real dataset's layout.

``generate(preset="tiny", seed=0, out=..., specs=None, **overrides)`` writes a dataset and returns a report;
``ensure_dataset(...)`` reuses a matching one. ``TrackSpec`` renders controlled datasets (exact cameras, types,
colours, manoeuvres and optional sentences). Command line: ``python -m lib.synthetic --preset tiny --seed 0
--out DIR``.
"""

from lib.synthetic.dataset import (
    GENERATOR_VERSION,
    camera_background,
    dataset_matches,
    ensure_dataset,
    generate,
    prepare_data_root,
    settings_of,
)
from lib.synthetic.plan import TrackSpec, difficulty
from lib.synthetic.presets import PRESETS, ScenarioSpec, Settings, resolve
from lib.synthetic.vocab import BLOCK_MANOEUVRES, COLOURS, MANOEUVRES, TYPES

__all__ = ["BLOCK_MANOEUVRES", "COLOURS", "GENERATOR_VERSION", "MANOEUVRES", "PRESETS", "TYPES", "ScenarioSpec",
           "Settings", "TrackSpec", "camera_background", "dataset_matches", "difficulty", "ensure_dataset", "generate",
           "prepare_data_root", "resolve", "settings_of"]
