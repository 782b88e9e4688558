"""lib.progress: text bars that keep their final state in a runner's (headless) kernel, tqdm.auto elsewhere."""

from __future__ import annotations

import io

from lib.progress import headless, progress_bar


def test_headless_bars_are_text_and_stay(monkeypatch) -> None:
    monkeypatch.setenv("CFNL_HEADLESS", "1")
    assert headless()
    buf = io.StringIO()
    bar = progress_bar(range(5), desc="frames", leave=False, file=buf)
    assert type(bar).__module__ == "tqdm.std"
    for _ in bar:
        pass
    # one line, the final state (not erased although leave=False), without the redraws
    assert buf.getvalue().startswith("frames: 100%") and buf.getvalue().count("\n") == 1
    assert "\r" not in buf.getvalue()


def test_elsewhere_tqdm_auto_chooses(monkeypatch) -> None:
    monkeypatch.delenv("CFNL_HEADLESS", raising=False)
    assert not headless()
    bar = progress_bar(total=3, disable=True)
    from tqdm.auto import tqdm

    assert isinstance(bar, tqdm)
