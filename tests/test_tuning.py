"""trainer.tuning: fold stores by subject that never hold a test clip, a whole (tiny)
study that resumes without retraining, the pooled summary, and the same summary from the
records alone (a fresh clone) without retraining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.core.clipstore import ClipStore
from trainer.tuning import load_tuning, run_all, stratified_folds, subject_folds, write_summary

from .synth import make_store


def test_every_train_clip_is_held_out_exactly_once_and_test_never_copied(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    src = ClipStore(store)
    train_ids = sorted(c.clip_id for c in src if c.split == "train")
    folds = subject_folds(store, tmp_path / "folds")
    assert [f.name for f in folds] == ["fold_s0", "fold_s1", "fold_s2"]  # s3 is the test subject
    held = []
    for fold in folds:
        clips = list(ClipStore(fold))
        assert sorted(c.clip_id for c in clips) == train_ids
        val = [c for c in clips if c.split == "val"]
        assert {c.subject for c in val} == {fold.name[len("fold_"):]}
        assert {c.split for c in clips} == {"train", "val"}
        held += [c.clip_id for c in val]
    assert sorted(held) == train_ids
    stamp = [f.joinpath("meta.json").stat().st_mtime_ns for f in folds]
    subject_folds(store, tmp_path / "folds")  # existing fold stores are reused
    assert [f.joinpath("meta.json").stat().st_mtime_ns for f in folds] == stamp


def test_stratified_folds_hold_out_each_train_clip_once_with_every_class(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    src = ClipStore(store)
    train = [c for c in src if c.split == "train"]
    folds = stratified_folds(store, tmp_path / "folds", 3)
    assert [f.name for f in folds] == ["fold_k0", "fold_k1", "fold_k2"]
    held: list[str] = []
    for fold in folds:
        clips = list(ClipStore(fold))
        assert sorted(c.clip_id for c in clips) == sorted(c.clip_id for c in train)
        val = [c for c in clips if c.split == "val"]
        for label in {c.label for c in train}:  # each class dealt evenly: 1/3 of it, +-1
            n = sum(c.label == label for c in train)
            assert abs(sum(c.label == label for c in val) - n / 3) < 1
        held += [c.clip_id for c in val]
    assert sorted(held) == sorted(c.clip_id for c in train)


@pytest.mark.parametrize("folds", [1, -2])
def test_a_fold_count_of_one_or_less_is_refused(tmp_path: Path, folds: int) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"store": "s", "runs": "r", "summary": "m", "base": "b",
                                 "variants": {}, "folds": folds}))
    with pytest.raises(SystemExit, match=rf"t.yaml: folds must be 0 \(one subject per fold\) "
                                         rf"or at least 2, got {folds}"):
        load_tuning(p)


def _study(tmp_path: Path, epochs: int, **conf: object) -> tuple[Path, Path]:
    """A synthetic store, a tiny base config (``epochs``) and a study config over them
    (``conf`` added); returns the store and the study config's path."""
    store = make_store(tmp_path / "store")
    base = {"threads": 1, "preprocess": {"window": 16, "dims": 3, "streams": ["joint"]},
            "model": {"name": "jcd_tiny"}, "augment": {"mirror": 0.0},
            "optim": {"epochs": epochs, "batch_size": 16}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    return store, _write(tmp_path, {
        "store": str(store), "runs": str(tmp_path / "runs"), "summary": str(tmp_path / "t.md"),
        "records": str(tmp_path / "records"), "base": str(tmp_path / "base.yaml"), **conf})


def test_a_study_runs_resumes_and_pools_its_folds(tmp_path: Path) -> None:
    store, cfg_path = _study(tmp_path, 1, variants={"one": {"optim.epochs": 1}},
                             notes=["what was read"])
    cfg = load_tuning(cfg_path)
    run_all(cfg)
    records = tmp_path / "records"
    res = [json.loads(p.read_text()) for p in sorted((records / "one").glob("*.json"))]
    assert [r["fold"] for r in res] == ["fold_s0", "fold_s1", "fold_s2"]
    assert all(r["epochs"] == 1 and 0.0 <= r["val"] <= 1.0 for r in res)
    n = sum(r["n_val"] for r in res)
    pooled = sum(r["val"] * r["n_val"] for r in res) / n
    assert n == sum(1 for c in ClipStore(store) if c.split == "train")
    text = (tmp_path / "t.md").read_text()
    assert all(r["val_last"] == r["val"] for r in res)  # one epoch: the last is the best
    assert (f"| one | `{{\"optim.epochs\": 1}}` | 3 | {100 * pooled:.1f} | "
            + ", ".join(f"{100 * r['val']:.1f}" for r in res) + f" | {100 * pooled:.1f} |") in text
    assert text.rstrip().endswith("what was read")
    assert not list((tmp_path / "runs").rglob("result.json"))  # records only in records/
    stamp = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    run_all(cfg)  # every record is there: nothing is trained again
    assert {p: p.stat().st_mtime_ns for p in records.rglob("*.json")} == stamp
    # A fresh clone: the records, no runs folder. The summary comes back the same, and a
    # rerun (which rebuilds the fold stores) trains nothing.
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "t.md").unlink()
    write_summary(cfg)  # --summary
    assert (tmp_path / "t.md").read_text() == text
    run_all(cfg)
    assert not list((tmp_path / "runs").rglob("*.pt"))
    assert {p: p.stat().st_mtime_ns for p in records.rglob("*.json")} == stamp
    assert (tmp_path / "t.md").read_text() == text


def test_more_seeds_train_every_fold_again_and_give_mean_and_std(tmp_path: Path) -> None:
    cfg = load_tuning(_study(tmp_path, 2, variants={"one": {}}, seeds=[3])[1])
    run_all(cfg)
    records = tmp_path / "records" / "one"
    at0 = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    at3 = [json.loads(p.read_text()) for p in sorted((records / "seed3").glob("*.json"))]
    assert [r["fold"] for r in at3] == [r["fold"] for r in at0] == ["fold_s0", "fold_s1",
                                                                    "fold_s2"]
    assert all(r["seed"] == 3 for r in at3) and not any("seed" in r for r in at0)
    assert "seed: 3" in (tmp_path / "runs/one/seed3/fold_s0/config.yaml").read_text()

    def pooled(res: list[dict], key: str) -> float:
        return 100 * sum(r[key] * r["n_val"] for r in res) / sum(r["n_val"] for r in res)

    best = np.array([pooled(at0, "val"), pooled(at3, "val")])
    last = np.array([pooled(at0, "val_last"), pooled(at3, "val_last")])
    text = (tmp_path / "t.md").read_text()
    assert "seed 0 (the last column: also seeds 3);" in text
    # the row of seed 0 as a one-seed study has it, then the mean and std over both seeds
    assert (f"| {pooled(at0, 'val_last'):.1f} | "
            + ", ".join(f"{100 * r['val_last']:.1f}" for r in at0)
            + f" | 2, 2, 2 | {best.mean():.1f} ± {best.std(ddof=1):.1f} / "
            f"{last.mean():.1f} ± {last.std(ddof=1):.1f} (2 seeds) |") in text


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"store": "s", "runs": "r", "summary": "m", "base": "b",
                                 "variants": {}, "seed_list": [0]}))
    with pytest.raises(SystemExit, match=r"t.yaml: unknown keys \['seed_list'\]"):
        load_tuning(p)


@pytest.mark.parametrize("seeds", [[0, 1], [1, 1]])
def test_more_seeds_must_be_new_ones(tmp_path: Path, seeds: list[int]) -> None:
    p = _write(tmp_path, {"store": "s", "runs": "r", "summary": "m", "base": "b",
                          "variants": {}, "seeds": seeds})
    with pytest.raises(SystemExit, match=rf"t.yaml: seeds must be distinct and other than "
                                         rf"seed 0, got \[{seeds[0]}, {seeds[1]}\]"):
        load_tuning(p)


def test_training_only_named_variants_refuses_a_name_the_study_lacks(tmp_path: Path) -> None:
    cfg = load_tuning(_write(tmp_path, {"store": "s", "runs": "r", "summary": "m", "base": "b",
                                        "variants": {"base": {}, "aug": {}}}))
    with pytest.raises(SystemExit, match=r"r: no variant\(s\) \['agu'\]; the config has "
                                         r"\['base', 'aug'\]"):
        run_all(cfg, ["agu"])


def _write(tmp_path: Path, conf: dict) -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(conf, sort_keys=False))
    return p
