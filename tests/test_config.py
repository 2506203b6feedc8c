"""Config loading: frozen dataclasses from YAML that refuse unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import ConfigError, TrainConfig, from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_round_trip() -> None:
    cfg = from_dict({"name": "x", "data": {"sources": [{"store": "a"}, {"store": "b", "weight": 2}]}})
    assert cfg.data.sources[1].weight == 2.0
    again = from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize(("data", "message"), [
    ({"nmae": "typo"}, "unknown keys ['nmae']"),
    ({"optim": {"epohcs": 3}}, "<t>.optim: unknown keys ['epohcs']"),
    ({"optim": {"epochs": "many"}}, "<t>.optim.epochs: expected int"),
    ({"preprocess": {"dims": 4}}, "dims must be 2 or 3"),
    ({"data": {"sources": [{"weight": 1.0}]}}, "missing 1 required positional argument: 'store'"),
    # choices are checked when the config loads, not at the first epoch
    ({"model": {"name": "resnet"}}, "<t>.model: unknown model 'resnet'; registered: ['jcd_base'"),
    ({"model": {"sharing": "partial"}}, "<t>.model: sharing must be one of ['hard', 'soft', 'learned']"),
    ({"model": {"name": "jcd_small", "sharing": "soft"}}, "shares its trunk hard only"),
    ({"loss": {"weighting": "gradnorm"}}, "<t>.loss: weighting must be one of ['mean', 'dwa'"),
    ({"optim": {"optimizer": "sgd"}}, "<t>.optim: optimizer must be one of ['adam', 'adamw']"),
    ({"optim": {"schedule": "step"}}, "<t>.optim: schedule must be one of ['plateau', 'cosine']"),
    ({"optim": {"patience": -1}}, "<t>.optim: patience must be >= 0, got -1"),
    ({"optim": {"epochs": 0}}, "<t>.optim: epochs must be >= 1, got 0"),
    ({"device": "tpu"}, "<t>: device must be one of ['auto', 'cpu', 'cuda'], got 'tpu'"),
    ({"preprocess": {"joints": [3, 99]}}, "joints must be at least 2 distinct indices"),
    ({"data": {"sampling": "shuffle"}}, "<t>.data: sampling must be one of ['weighted', 'pass']"),
    ({"data": {"sampling": "pass", "epoch_size": 100}},
     "<t>.data: sampling 'pass' uses every clip once per epoch: epoch_size and source "
     "weights need sampling 'weighted'"),
    ({"data": {"sampling": "pass", "sources": [{"store": "a", "weight": 2}]}},
     "sampling 'pass' uses every clip once per epoch"),
])
def test_bad_configs_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(data, "<t>")


def test_dotted_overrides() -> None:
    cfg = TrainConfig().replace(**{"model.name": "stgcn_tiny", "model.sharing": "soft",
                                   "optim.epochs": 3})
    assert (cfg.model.sharing, cfg.optim.epochs) == ("soft", 3)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    load_config(path)


def test_bundled_model_card_is_shipped_unchanged() -> None:
    """docs/models.md is the card; the package ships the same text beside the model."""
    root = Path(__file__).resolve().parents[1]
    shipped = root / "edge" / "assets" / "model" / "model_card.md"
    assert shipped.read_text() == (root / "docs" / "models.md").read_text()


def test_bundled_config_loads() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "bundled.yaml")
    assert cfg.model.name == "jcd_base" and cfg.model.sharing == "hard"
    assert cfg.preprocess.dims == 2 and cfg.preprocess.window == 32
    # candidate E of docs/models.md: C's task-head weight, seed 1
    assert (cfg.loss.task_head_weight, cfg.seed, cfg.out) == (0.5, 1, "runs/bundled")
    old = load_config(root / "configs" / "bundled_stgcn.yaml")  # shipped until 2026-12-05
    assert old.model.name == "stgcn_tiny"


def test_experiment_verdict_names_every_loss() -> None:
    from trainer.experiment import _verdict

    cell = {("stl", "c", "action"): [60.0, 62.0], ("hard-mean", "c", "action"): [63.0, 65.0],
            ("soft-mean", "c", "action"): [58.0, 59.0], ("stl", "c", "gesture"): [90.0]}
    text = "\n".join(_verdict(cell, ["stl", "hard-mean", "soft-mean"],
                              [("c", "action"), ("c", "gesture")]))
    # +3.0 against a standard error of sqrt(2/2 + 2/2) = 1.41: clear; -2.5 against
    # sqrt(2/2 + 0.5/2) = 1.12: clear as well.
    assert ("c action: STL 61.0; best MTL hard-mean 64.0 (+3.0); MTL variants above STL: "
            "1 of 2, clearly: hard-mean.") in text
    assert "MTL below STL: soft-mean on c action (-2.5, clear)." in text
    assert "c gesture" not in text  # no MTL run finished there yet
    noisy = {("stl", "c", "action"): [60.0, 66.0], ("hard-mean", "c", "action"): [62.0, 68.0],
             ("soft-mean", "c", "action"): [70.0]}  # +2 within noise; one seed: never clear
    text = "\n".join(_verdict(noisy, ["stl", "hard-mean", "soft-mean"], [("c", "action")]))
    assert "MTL variants above STL: 2 of 2, none clearly." in text


@pytest.mark.parametrize(("flag", "message"), [
    ("optim.epohcs=5", "skelmtl train: error: --set optim.epohcs=5: {cfg}.optim: unknown keys ['epohcs']"),
    ("nope.x=5", "skelmtl train: error: --set nope.x=5: {cfg} has no key 'nope.x'"),
    ("optim.schedule=step", "skelmtl train: error: --set optim.schedule='step': {cfg}.optim: schedule must be one of"),
])
def test_set_typos_name_the_flag_and_the_file(flag: str, message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from skelmtl.cli import main

    cfg = str(REPO / "configs" / "bundled.yaml")
    assert main(["train", "--config", cfg, "--set", flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message.format(cfg=cfg)), err
    assert len(err.splitlines()) == 1
