"""Distillation: the loss against a numpy reference, a student that learns from its
teacher alone, teachers that read other windows refused by name, configs checked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trainer.config import ConfigError, TrainConfig, from_dict
from trainer.evaluate import evaluate_checkpoint
from trainer.losses import NO_LABEL, distillation_losses
from trainer.records import Records
from trainer.train import train
from trainer.tuning import _missing_teachers, for_fold

from .synth import make_store
from .test_train import _cfg as _train_cfg

QUIET = {"augment.mirror": 0.0, "augment.rotate_deg": 0.0, "augment.scale": 0.0,
         "augment.crop": 1.0, "augment.drop_hand": 0.0, "augment.drop_hands": 0.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("synth") / "store")


def _cfg(store: Path, out: Path, **kw: object) -> TrainConfig:
    """test_train's loop config (stgcn_tiny, 8 epochs, cosine), augmentation off."""
    return _train_cfg(store, out, **QUIET, **kw)


@pytest.fixture(scope="module")
def teacher(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(_cfg(store, out), progress=False, log=lambda s: None)
    return out


def _reference(z: np.ndarray, p: np.ndarray, temp: float) -> np.ndarray:
    """T^2 * KL(p || softmax(z / T)) per row, in float64."""
    s = z / temp
    logq = s - s.max(1, keepdims=True)
    logq = logq - np.log(np.exp(logq).sum(1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return temp ** 2 * (plogp - p * logq).sum(1)


def test_distillation_loss_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    za, zg = rng.normal(size=(6, 3)) * 3, rng.normal(size=(6, 4)) * 3
    pa = rng.dirichlet(np.ones(3), 6)
    pa[0] = [1.0, 0.0, 0.0]  # a teacher probability of exactly 0: no NaN
    task = torch.tensor([0, 0, 0, 1, 1, 0])
    labels = torch.tensor([2, NO_LABEL, 1, 0, 3, 0])
    out = distillation_losses({"logits_action": torch.tensor(za), "logits_gesture": torch.tensor(zg)},
                              {"action": torch.tensor(pa)}, task, labels, ["action", "gesture"], 3.0)
    # Only taught tasks, over the samples the cross-entropy averages: action rows 0, 2, 5.
    assert set(out) == {"action"}
    want = _reference(za, pa, 3.0)[[0, 2, 5]].mean()
    assert float(out["action"]) == pytest.approx(want, rel=1e-9)
    # The teacher's own logits at the same temperature cost nothing.
    same = torch.softmax(torch.tensor(za) / 3.0, 1)
    zero = distillation_losses({"logits_action": torch.tensor(za)}, {"action": same},
                               task, labels, ["action"], 3.0)
    assert float(zero["action"]) == pytest.approx(0.0, abs=1e-12)


def test_a_student_taught_by_its_teacher_alone_learns(store: Path, teacher: Path,
                                                      tmp_path: Path) -> None:
    # distill_weight 1: the labels' cross-entropy has no weight, so everything the student
    # learns comes through the distillation term (without it, chance: 1/3).
    cfg = _cfg(store, tmp_path / "student", seed=1,
               **{"loss.distill_from": [str(teacher)], "loss.distill_weight": 1.0})
    res = train(cfg, progress=False, log=lambda s: None)
    rep = evaluate_checkpoint(res.best, split="test")
    ref = evaluate_checkpoint(teacher / "best.pt", split="test")
    assert ref["tasks"]["action"]["top1"] >= 0.8
    assert rep["tasks"]["action"]["top1"] >= 0.8, rep["tasks"]["action"]
    # The history logs the labels' cross-entropy as "loss" and the term as "distill".
    row = json.loads((tmp_path / "student" / "history.jsonl").read_text().splitlines()[-1])
    assert set(row["loss"]) == set(row["distill"]) == {"action", "gesture"}


def test_weight_zero_is_the_plain_run(store: Path, teacher: Path, tmp_path: Path) -> None:
    # The teachers are loaded and run at weight 0 too: the run equal to the plain one bit
    # for bit shows that loading them leaves the run's random streams alone, so the
    # distilled run below differs from the plain one by its loss alone.
    kw = {"optim.epochs": 2, "model.dropout": 0.5}  # dropout draws from the global generator
    plain = train(_cfg(store, tmp_path / "plain", **kw), progress=False, log=lambda s: None)
    zero = train(_cfg(store, tmp_path / "zero", **kw, **{"loss.distill_from": [str(teacher)],
                                                         "loss.distill_weight": 0.0}),
                 progress=False, log=lambda s: None)
    taught = train(_cfg(store, tmp_path / "taught", **kw, **{"loss.distill_from": [str(teacher)]}),
                   progress=False, log=lambda s: None)
    a, b, c = (torch.load(r.best, weights_only=True)["state_dict"] for r in (plain, zero, taught))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_teachers_that_read_other_windows_or_are_missing_are_refused(
        store: Path, teacher: Path, tmp_path: Path) -> None:
    cfg = _cfg(store, tmp_path / "w24", **{"preprocess.window": 24,
                                           "loss.distill_from": [str(teacher)]})
    with pytest.raises(ConfigError, match=r"best\.pt: the teacher reads other windows than the "
                                          r"student \(window: teacher 16, student 24\)"):
        train(cfg, progress=False, log=lambda s: None)
    gone = tmp_path / "nowhere" / "best.pt"
    cfg = _cfg(store, tmp_path / "gone", **{"loss.distill_from": [str(gone)]})
    with pytest.raises(ConfigError, match=f"^{gone}: no such teacher checkpoint"):
        train(cfg, progress=False, log=lambda s: None)
    assert not (tmp_path / "gone" / "best.pt").exists()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("distill_weight", 1.5, "distill_weight must be in [0, 1], got 1.5"),
    ("distill_temperature", 0.0, "distill_temperature must be > 0, got 0.0"),
    ("distill_from", [3], "expected str, got 3"),
])
def test_bad_distillation_settings_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        from_dict({"name": "t", "out": "x", "data": {"sources": [{"store": "s"}]},
                   "loss": {key: value}})


def test_tuning_names_each_folds_own_teachers() -> None:
    assert for_fold(["runs/a/{fold}/last.pt", "runs/b/{fold}"], "fold_2") == \
        ["runs/a/fold_2/last.pt", "runs/b/fold_2"]
    assert for_fold(0.5, "fold_2") == 0.5 and for_fold("x", "fold_1") == "x"


def test_tuning_waits_for_teachers_not_trained_yet(tmp_path: Path) -> None:
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    cfg = SimpleNamespace(runs=str(runs), run_records=Records(tmp_path / "records", runs))
    (runs / "v" / "fold_1").mkdir(parents=True)
    (runs / "v" / "fold_1" / "best.pt").write_bytes(b"x")  # written after its first epoch
    (elsewhere / "fold_1").mkdir(parents=True)
    (elsewhere / "fold_1" / "best.pt").write_bytes(b"x")
    overrides = {"loss.distill_from": [f"{runs}/v/{{fold}}", f"{elsewhere}/{{fold}}"]}
    # A run of the study is ready once recorded; a file from elsewhere once it exists.
    assert _missing_teachers(cfg, overrides, "fold_1") == [f"{runs}/v/fold_1/best.pt"]
    cfg.run_records.write("v/fold_1", {"val": 0.5})
    assert _missing_teachers(cfg, overrides, "fold_1") == []
    assert _missing_teachers(cfg, overrides, "fold_2") == [f"{runs}/v/fold_2/best.pt",
                                                           f"{elsewhere}/fold_2/best.pt"]
    # One path without a list is one path, not its characters.
    one = {"loss.distill_from": f"{elsewhere}/{{fold}}/last.pt"}
    assert _missing_teachers(cfg, one, "fold_1") == [f"{elsewhere}/fold_1/last.pt"]
    assert _missing_teachers(cfg, {"augment.scale": 0.1}, "fold_1") == []
