"""Loading a text encoder: no transformers load report in the output, real mismatches still warned about."""

from __future__ import annotations

import logging
import warnings

import pytest

from lib.families.text_encoders import load_pretrained, resolve_text_encoder


def _tiny_bert(path, pooler: bool):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    BertModel(cfg, add_pooling_layer=pooler).save_pretrained(path)
    return path


def test_pooler_left_out_on_purpose_loads_quietly(capfd, caplog) -> None:
    folder = resolve_text_encoder("all-MiniLM-L6-v2")  # a checkpoint with pooler weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.WARNING):
            model = load_pretrained(folder, add_pooling_layer=False)
    assert model.pooler is None
    out = capfd.readouterr()
    assert "LOAD REPORT" not in out.out + out.err + caplog.text


def test_missing_weights_are_still_a_warning(tmp_path, capfd) -> None:
    folder = _tiny_bert(tmp_path / "bert", pooler=False)
    with pytest.warns(UserWarning, match=r"missing keys \['pooler"):
        load_pretrained(folder)  # the model has a pooler, the folder has none: random pooler weights
    assert "LOAD REPORT" not in "".join(capfd.readouterr())
