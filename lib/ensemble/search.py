"""Interactive search: type a sentence, get the ensemble's top tracks, see them as thumbnail strips.

``SearchIndex`` holds, per configuration, a text encoder (``sentences -> [S, D]``), its gallery features, its scoring
rule and weight (the same rules and published weights as ``lib.ensemble.scores``). ``search(sentence, index, k)`` ranks
every gallery track for one description (one sentence or several); ``show_results`` draws thumbnail strips with
matplotlib, and ``interactive_search`` wraps both in an ipywidgets text box when ipywidgets is available (in a
headless papermill run, call ``search`` + ``show_results`` directly).

``SearchIndex.from_runs(runs_dir, configs)`` rebuilds each trained model from what ``lib.embed`` recorded in the
embedding folder (configuration file, overrides and checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.cityflow import Layout
from lib.embeddings import Gallery, Queries, gallery_vectors, load_gallery_embeddings, query_vectors, read_manifest

Encoder = Callable[[list[str]], np.ndarray]


@dataclasses.dataclass
class SearchMember:
    name: str
    rule: str
    weight: float
    encode: Encoder  # sentences -> [S, D] (each sentence L2-normalised)
    gallery: Gallery


@dataclasses.dataclass
class Hit:
    rank: int
    track_id: str
    score: float


class SearchIndex:
    """Precomputed gallery vectors of every member, aligned to one track order."""

    def __init__(self, members: Sequence[SearchMember]) -> None:
        if not members:
            raise ValueError("a search index needs at least one configuration")
        self.members = list(members)
        self.track_ids = list(members[0].gallery.ids)
        self._gallery = []
        for m in self.members:
            pos = {t: i for i, t in enumerate(m.gallery.ids)}
            if set(pos) != set(self.track_ids):
                raise ValueError(f"{m.name}: gallery tracks differ from {members[0].name}'s")
            g = gallery_vectors(m.gallery, m.rule)
            self._gallery.append(g[[pos[t] for t in self.track_ids]])

    def scores(self, sentences: Sequence[str]) -> np.ndarray:
        """[N] ensemble scores of every track for one description."""
        total = np.zeros(len(self.track_ids), dtype=np.float32)
        for m, g in zip(self.members, self._gallery):
            feats = np.asarray(m.encode(list(sentences)), dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != len(sentences):
                raise ValueError(f"{m.name}: encoder returned {feats.shape} for {len(sentences)} sentence(s)")
            q = query_vectors(Queries(["query"], feats[None], np.array([len(sentences)])), m.rule)
            total += m.weight * (q @ g.T)[0]
        return total

    @classmethod
    def from_runs(cls, runs_dir: str | os.PathLike[str], configs: Sequence[str],
                  device: str | None = None) -> SearchIndex:
        """Load each configuration's trained model and test gallery from ``runs_dir/embed/<config>``."""
        from lib.families import load_config, load_trained_model
        from lib.families.base import get_family

        members = []
        for name in configs:
            d = Path(runs_dir) / "embed" / name
            man = read_manifest(d)
            if man.get("ablation"):
                continue
            for key in ("config_path", "checkpoint"):
                if key not in man:
                    raise KeyError(f"{d / 'embedding.json'}: no {key!r}: these embeddings were not made by "
                                   "lib.embed, so there is no model to encode a new sentence")
            cfg = load_config(man["config_path"], man.get("overrides") or None)
            model = load_trained_model(cfg, man["checkpoint"], device=device,
                                       allow_config_mismatch="config_mismatch" in man)
            fam = get_family(cfg.family)

            def encode(sentences: list[str], fam: Any = fam, model: Any = model, cfg: Any = cfg) -> np.ndarray:
                return fam.embed_queries(model, cfg, [sentences])[0]

            members.append(SearchMember(name, man["rule"], float(man["weight"]), encode,
                                        load_gallery_embeddings(d / "gallery.npz")))
        return cls(members)


def search(sentence: str | Sequence[str], index: SearchIndex, k: int = 10) -> list[Hit]:
    """The ``k`` best tracks for a description (one sentence or a list of sentences), best first."""
    sentences = [sentence] if isinstance(sentence, str) else list(sentence)
    if not sentences or not all(s.strip() for s in sentences):
        raise ValueError("type a non-empty description")
    s = index.scores(sentences)
    order = np.argsort(-s, kind="stable")[:k]
    return [Hit(i + 1, index.track_ids[j], float(s[j])) for i, j in enumerate(order)]


def test_gallery(data_root: str | os.PathLike[str]) -> tuple[Layout, dict[str, dict[str, Any]]]:
    """The layout of ``data_root`` and its test tracks (what :func:`show_results` draws from)."""
    from lib.cityflow import load_tracks

    layout = Layout.of(data_root)
    return layout, load_tracks(layout.test_tracks)


def show_results(hits: Sequence[Hit], layout: Layout, tracks: Mapping[str, dict[str, Any]], n_frames: int = 4,
                 title: str = "", mark: str | None = None) -> Any:
    """A matplotlib figure: one row per hit, ``n_frames`` thumbnails along the track; ``mark`` framed green."""
    import matplotlib.pyplot as plt

    from lib.thumbnails import framed, track_strip

    fig, axes = plt.subplots(len(hits), n_frames, figsize=(1.6 * n_frames, 1.7 * len(hits)), squeeze=False)
    for r, hit in enumerate(hits):
        strip = track_strip(layout, hit.track_id, tracks[hit.track_id], n=n_frames)
        for c in range(n_frames):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(strip):
                ax.imshow(framed(strip[c], (0, 200, 0)) if hit.track_id == mark else strip[c])
        axes[r, 0].set_title(f"#{hit.rank} {hit.track_id[:8]} ({hit.score:.3f})", fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def interactive_search(index: SearchIndex, layout: Layout, tracks: Mapping[str, dict[str, Any]], k: int = 5,
                       initial: str = "") -> Any:
    """An ipywidgets search box (JupyterLab); returns the widget, or ``None`` when ipywidgets is not installed."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    import matplotlib.pyplot as plt
    from IPython.display import display

    box = widgets.Text(value=initial, placeholder="e.g. a red pickup truck turns left at the intersection",
                       description="Search:", continuous_update=False, layout=widgets.Layout(width="80%"))
    out = widgets.Output()

    def run(_: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            if not box.value.strip():
                return
            fig = show_results(search(box.value, index, k), layout, tracks, title=box.value)
            display(fig)
            plt.close(fig)

    box.observe(run, names="value")  # fires on Enter / focus loss (continuous_update=False)
    if initial:
        run()
    return widgets.VBox([box, out])
