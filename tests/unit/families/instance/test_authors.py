"""Import of the authors' Part Two checkpoints: the original layout (Cadene ``pretrainedmodels`` SE-ResNeXt101 under
the original module names, layumi's GeM, HF RoBERTa as ``bert_model``, the shared ClassBlock), random weights,
saved as ``net_last.pth`` from DataParallel + ``opts.yaml``; after conversion our model gives the same embeddings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from lib.config import merge
from lib.families import load_config, load_trained_model
from lib.families.instance import authors as A
from tests.helpers.instance_configs import make_roberta_folder

pretrainedmodels = pytest.importorskip("pretrainedmodels")

PAPER_NSEG1 = "b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2"
PAPER_NSEG3 = "b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2"


class OrigGeM(nn.Module):
    """layumi's GeM as written in the original model.py (transpose, pow, avg_pool2d, pow)."""

    def __init__(self, dim: int = 2048, p: float = 3, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(dim) * p, requires_grad=True)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.transpose(x, 1, -1)
        x = x.clamp(min=self.eps).pow(self.p)
        x = torch.transpose(x, 1, -1)
        x = F.avg_pool2d(x, (x.size(-2), x.size(-1)))
        x = x.view(x.size(0), x.size(1))
        return x.pow(1.0 / self.p)


class OrigClassBlock(nn.Module):
    """ClassBlock of the original model.py: ``add_block`` (Linear + BN = the 512-d embedding), a separate
    parameter-free ``drop``, then ``classifier`` = Sequential(Linear)."""

    def __init__(self, input_dim: int, class_num: int, droprate: float, num_bottleneck: int = 512) -> None:
        super().__init__()
        self.add_block = nn.Sequential(nn.Linear(input_dim, num_bottleneck), nn.BatchNorm1d(num_bottleneck))
        self.drop = nn.Dropout(p=droprate)
        self.classifier = nn.Sequential(nn.Linear(num_bottleneck, class_num))


class OrigFtNetSE(nn.Module):
    """ft_net_SE: ``model`` = the Cadene network (layer4 stride 1 for one frame, GeM 'avg' p 1 and 'max' p 5 as
    ``avg_pool2`` / ``max_pool2``, ``last_linear`` emptied) and ``classifier`` = the shared ClassBlock."""

    def __init__(self, stride: int, num_classes: int, droprate: float) -> None:
        super().__init__()
        model_ft = pretrainedmodels.__dict__["se_resnext101_32x4d"](num_classes=1000, pretrained=None)
        if stride == 1:
            model_ft.layer4[0].conv2.stride = (1, 1)
            model_ft.layer4[0].downsample[0].stride = (1, 1)
        model_ft.avg_pool2 = OrigGeM(2048, p=1)
        model_ft.max_pool2 = OrigGeM(2048, p=5)
        model_ft.last_linear = nn.Sequential()
        self.model = model_ft
        self.classifier = OrigClassBlock(4096, num_classes, droprate)


class OrigSiamese(nn.Module):
    """SiameseBaselineModel under its original attribute names (docs/reference.md, P2.8)."""

    def __init__(self, nseg: int, num_classes: int, droprate: float, roberta_dir: Path) -> None:
        super().__init__()
        from transformers import RobertaConfig, RobertaModel

        self.nseg = nseg
        self.resnet50 = OrigFtNetSE(1 if nseg == 1 else 2, num_classes, droprate)
        if nseg > 1:
            self.gem = OrigGeM(4096, p=3)
        self.bert_model = RobertaModel(RobertaConfig.from_pretrained(str(roberta_dir)))
        self.bert_model.pooler = nn.Sequential()  # the original removes the pooler: no pooler keys in the file
        e = self.bert_model.config.hidden_size
        self.lang_fc = nn.Sequential(nn.BatchNorm1d(2 * e), nn.Linear(2 * e, 4096))
        self.visual_fc = nn.Sequential(nn.BatchNorm1d(4096), nn.Linear(4096, 4096))
        self.logit_scale1 = nn.Parameter(torch.ones(()))
        self.logit_scale2 = nn.Parameter(torch.ones(()))

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        m = self.resnet50.model
        f = m.layer4(m.layer3(m.layer2(m.layer1(m.layer0(x)))))
        v = torch.cat([m.avg_pool2(f), m.max_pool2(f)], dim=1)
        if self.nseg > 1:
            v = v.view(-1, self.nseg, 4096).permute(0, 2, 1).unsqueeze(-1)
            v = self.gem(v)
        return self.resnet50.classifier.add_block(self.visual_fc(v))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = torch.cat([h.mean(dim=1), h.max(dim=1)[0]], dim=1)
        return self.resnet50.classifier.add_block(self.lang_fc(pooled))


def original_key_set(nseg: int, num_classes: int = 2498) -> set[str]:
    """The exact key set of a released net_last.pth (docs/reference.md, P2.8), DataParallel prefix included."""
    blocks = {"resnet50.model." + k for k in pretrainedmodels.__dict__["se_resnext101_32x4d"](
        num_classes=1000, pretrained=None).state_dict() if k.startswith("layer")}
    keys = blocks | {"resnet50.model.avg_pool2.p", "resnet50.model.max_pool2.p", "logit_scale1", "logit_scale2"}
    keys |= {f"resnet50.classifier.add_block.0.{n}" for n in ("weight", "bias")}
    keys |= {f"resnet50.classifier.add_block.1.{n}" for n in ("weight", "bias", "running_mean", "running_var",
                                                               "num_batches_tracked")}
    keys |= {"resnet50.classifier.classifier.0.weight", "resnet50.classifier.classifier.0.bias"}
    keys |= {f"lang_fc.0.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    keys |= {"lang_fc.1.weight", "lang_fc.1.bias", "visual_fc.1.weight", "visual_fc.1.bias"}
    keys |= {f"visual_fc.0.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    if nseg > 1:
        keys.add("gem.p")
    return {"module." + k for k in keys}


def _randomise(model: nn.Module) -> None:
    """Non-trivial values everywhere (BN statistics, GeM exponents) so that a wrong mapping shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not torch.is_floating_point(t):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
            elif name.endswith(".p"):
                t.add_(torch.rand(t.shape, generator=g) * 0.5)
            elif name.endswith("logit_scale1"):
                t.fill_(1.7)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    make_roberta_folder(d / "roberta-small", small=True)
    return d


def _release(tmp: Path, nseg: int, roberta_dir: Path, num_classes: int = 7) -> tuple[OrigSiamese, Path, Path]:
    torch.manual_seed(nseg)
    orig = OrigSiamese(nseg, num_classes, 0.5, roberta_dir / "roberta-small")
    _randomise(orig)
    orig.eval()
    ckpt = tmp / "net_last.pth"
    torch.save({f"module.{k}": v for k, v in orig.state_dict().items()}, ckpt)  # saved from DataParallel
    opts = tmp / "opts.yaml"
    opts.write_text(yaml.safe_dump({"name": "x", "nseg": nseg, "CROP_SIZE": 64, "droprate": 0.5, "pad": 0.2,
                                    "batchsize": 36, "lr": 0.01, "warm_epoch": 20, "num_epoch": 100,
                                    "ddloss": True, "gpu_ids": "0", "fp16": False}))
    return orig, ckpt, opts


@pytest.mark.parametrize(("name", "nseg"), [(PAPER_NSEG1, 1), (PAPER_NSEG3, 3)])
def test_converted_checkpoint_gives_the_same_embeddings(name: str, nseg: int, tmp_path: Path, roberta_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(roberta_dir))
    orig, ckpt, opts = _release(tmp_path, nseg, roberta_dir)
    over = {"model": {"text_encoder": "roberta-small"}}
    model, rep = A.import_checkpoint(ckpt, name, opts, out_dir=tmp_path / "out", overrides=over)
    assert rep.ok, rep.to_dict()
    assert rep.dropped == ["logit_scale2"] and not rep.unmapped and not rep.missing
    # the file has exactly the released key set (bert_model.* apart, which is the RoBERTa of the config)
    saved = set(torch.load(ckpt, weights_only=True))
    assert {k for k in saved if not k.startswith("module.bert_model.")} == original_key_set(nseg, 7)
    assert not any(k.startswith("module.bert_model.pooler") for k in saved)
    assert rep.overrides["model"]["nseg"] == nseg and rep.overrides["data"]["pad"] == 0.2
    assert "gpu_ids" in rep.unused_options
    assert model.num_classes == 7 and abs(float(model.logit_scale.detach()) - 1.7) < 1e-6
    x = torch.randn(2 * nseg, 3, 64, 64)
    tok = model.tokenizer(["[CLS]A white sedan.[SEP]", "[CLS]A red pickup truck turns left.[SEP]"],
                          padding="longest", return_tensors="pt")
    with torch.no_grad():
        ref_v, ref_t = orig.encode_images(x), orig.encode_text(tok["input_ids"], tok["attention_mask"])
        ours_v, _ = model.encode_images(x.view(2, nseg, 3, 64, 64))
        ours_t, _ = model.encode_tokens(tok["input_ids"], tok["attention_mask"])
    assert torch.allclose(ours_v, ref_v, atol=1e-4, rtol=1e-4)
    assert torch.allclose(ours_t, ref_t, atol=1e-4, rtol=1e-4)
    # the written checkpoint loads like one of ours
    cfg = load_config(name, merge(rep.overrides, over))
    again = load_trained_model(cfg, tmp_path / "out" / "best.safetensors", device="cpu")
    with torch.no_grad():
        assert torch.allclose(again.encode_images(x.view(2, nseg, 3, 64, 64))[0], ours_v, atol=1e-6)
    assert (tmp_path / "out" / "import_report.json").exists()


def test_unknown_keys_and_unsafe_files_are_refused(tmp_path: Path, roberta_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(roberta_dir))
    orig, ckpt, opts = _release(tmp_path, 1, roberta_dir, num_classes=3)
    sd = dict(orig.state_dict())
    sd["mystery.weight"] = torch.zeros(2)
    del sd["visual_fc.1.bias"]  # a plain (not DataParallel) state dict is read too
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="mystery.weight"):
        A.import_checkpoint(tmp_path / "bad.pth", PAPER_NSEG1, opts, overrides={"model": {
            "text_encoder": "roberta-small"}})
    _, rep = A.import_checkpoint(tmp_path / "bad.pth", PAPER_NSEG1, opts, strict=False,
                                 overrides={"model": {"text_encoder": "roberta-small"}})
    assert rep.unmapped == ["mystery.weight"] and rep.missing == ["visual_fc.1.bias"] and not rep.ok

    class Payload:
        def __reduce__(self):  # would run code under a plain unpickler
            return (sys.exit, (3,))

    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth"):
        A.load_checkpoint(tmp_path / "evil.pth")


def test_cli_writes_the_checkpoint(tmp_path: Path, roberta_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(roberta_dir))
    _, ckpt, opts = _release(tmp_path, 1, roberta_dir, num_classes=3)
    rc = A.main([str(ckpt), "--config", PAPER_NSEG1, "--opts", str(opts), "--out", str(tmp_path / "o"),
                 "--override", '{"model": {"text_encoder": "roberta-small"}}'])
    assert rc == 0 and (tmp_path / "o" / "best.safetensors").exists() and '"ok": true' in capsys.readouterr().out
