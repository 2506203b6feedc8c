"""Training loop: learns a learnable set, resumes exactly, DDP equals accumulation, eval."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from trainer.checkpoint import load_checkpoint, read_checkpoint
from trainer.config import TrainConfig, from_dict
from trainer.evaluate import evaluate_checkpoint
from trainer.train import train

from .synth import make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("synth") / "store")


def _cfg(store: Path, out: Path, **kw: object) -> TrainConfig:
    d: dict = {"name": "t", "seed": 0, "out": str(out), "threads": 1,
               "data": {"sources": [{"store": str(store)}], "val_fraction": 0.2},
               "preprocess": {"window": 16, "dims": 3},
               "model": {"name": "stgcn_tiny", "dropout": 0.0},
               # the recipe these loop tests were written for: fixed epochs, cosine
               "optim": {"epochs": 8, "batch_size": 16, "lr": 3e-3, "warmup_epochs": 1,
                         "optimizer": "adamw", "schedule": "cosine", "patience": 0,
                         "weight_decay": 1e-4}}
    cfg = from_dict(d)
    return cfg.replace(**kw) if kw else cfg


def test_mtl_learns_both_tasks_and_evaluates(store: Path, tmp_path: Path) -> None:
    # Augmentation off: with ~20 training clips per task and 8 epochs the point here is
    # that the loop, heads and losses learn; augmentation has its own tests.
    cfg = _cfg(store, tmp_path / "run", **{"augment.mirror": 0.0, "augment.rotate_deg": 0.0,
                                           "augment.scale": 0.0, "augment.crop": 1.0,
                                           "augment.drop_hand": 0.0, "augment.drop_hands": 0.0})
    res = train(cfg, progress=False, log=lambda s: None)
    assert res.best.is_file()
    rep = evaluate_checkpoint(res.best, split="test", out_dir=tmp_path / "eval")
    # 3 classes per task: chance is 33%. The synthetic classes are unambiguous.
    assert rep["tasks"]["action"]["top1"] >= 0.8, rep["tasks"]["action"]
    # Gestures here are one finger moving inside an otherwise still hand: stgcn_tiny,
    # which pools over joints, learns that from ~20 clips per class only partly (test 4
    # or 5 of 9, by the joints it is given); the bar checks that the gesture head learns
    # at all. The jcd family's learning bar is on real data (test_jhmdb_learns_to_the_bar).
    assert rep["tasks"]["gesture"]["top1"] >= 4 / 9, rep["tasks"]["gesture"]
    assert rep["tasks"]["action"]["n"] == 9 and rep["tasks"]["gesture"]["n"] == 9
    # chance is 1/2; 15 of 18 since epochs rank by validation loss after accuracy (the
    # checkpoint picked moved by one epoch, the task head by one clip)
    assert rep["task_head"] >= 15 / 18
    assert (tmp_path / "eval" / "confusion_action.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["tasks"]["gesture"]["top1"] == rep["tasks"]["gesture"]["top1"]
    ck = load_checkpoint(res.best)
    assert ck.meta.tasks == ("action", "gesture")
    assert ck.meta.labels["action"] == ("push", "raise", "sweep")
    assert ck.meta.producer["data_fingerprint"]
    assert ck.config["model"]["name"] == "stgcn_tiny"


def test_stl_run_has_one_head(store: Path, tmp_path: Path) -> None:
    res = train(_cfg(store, tmp_path / "stl", tasks=["gesture"], **{"optim.epochs": 1}),
                progress=False, log=lambda s: None)
    ck = load_checkpoint(res.best)
    assert ck.meta.tasks == ("gesture",)
    assert ck.meta.has_task_head is False
    out = ck.model(torch.zeros(2, ck.meta.preprocess.channels, 16, 75))
    assert set(out) == {"logits_gesture"}


def test_resume_after_interruption(store: Path, tmp_path: Path) -> None:
    """Kill after epoch 2 of 3 (simulated by an exception), resume, compare with a clean run."""
    clean = train(_cfg(store, tmp_path / "clean", **{"optim.epochs": 3}), progress=False,
                  log=lambda s: None)
    cfg = _cfg(store, tmp_path / "cut", **{"optim.epochs": 3})
    import trainer.train as tt

    real = tt.accuracy_per_task
    calls = {"n": 0}

    def boom(*a: object, **k: object) -> dict:
        calls["n"] += 1
        if calls["n"] == 2:  # validation of the 2nd epoch: the process "dies" here
            raise KeyboardInterrupt
        return real(*a, **k)  # type: ignore[arg-type]

    tt.accuracy_per_task = boom  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False, log=lambda s: None)
    finally:
        tt.accuracy_per_task = real
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["extra"]["epoch"] == 0
    res = train(cfg, resume=True, progress=False, log=lambda s: None)
    assert res.epochs_run == 2
    a = read_checkpoint(clean.out_dir / "last.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "cut" / "last.pt")["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"{k} differs after resume")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        train(from_dict(cfg_dict), progress=False, log=lambda s: None)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize(("sharing", "distilled"), [("hard", False), ("soft", False),
                                                    ("hard", True)])
def test_ddp_two_processes_match_single_process(store: Path, tmp_path: Path,
                                                sharing: str, distilled: bool) -> None:
    """2 gloo processes x 8 samples == 1 process x 2 accumulated micro-batches of 8.

    Each rank's batch norm sees only its own samples, exactly like one micro-batch, and
    the loss is normalised over the whole step, so the weights must agree to float
    rounding. This checks the sampler sharding, the loss normalisation and DDP's
    gradient averaging together (and, distilled, the teachers' term and its log).
    """
    kw: dict = {"model.sharing": sharing, "optim.epochs": 2, "augment.mirror": 0.5,
                "loss.weighting": "dwa"}
    if distilled:
        teacher = _cfg(store, tmp_path / "teacher", **{"optim.epochs": 1})
        train(teacher, progress=False, log=lambda s: None)
        kw["loss.distill_from"] = [str(tmp_path / "teacher")]
    ref = _cfg(store, tmp_path / "ref", **kw, **{"optim.accumulate": 2})
    train(ref, progress=False, log=lambda s: None)
    ddp = _cfg(store, tmp_path / "ddp", **kw)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), ddp.to_dict()), nprocs=2,
                       start_method="spawn")
    a = read_checkpoint(tmp_path / "ref" / "last.pt")
    b = read_checkpoint(tmp_path / "ddp" / "last.pt")
    ha, hb = a["extra"]["history"], b["extra"]["history"]
    assert len(ha) == len(hb) == 2
    for ra, rb in zip(ha, hb):
        assert ra["loss"].keys() == rb["loss"].keys()
        for k in ra["loss"]:
            assert ra["loss"][k] == pytest.approx(rb["loss"][k], rel=1e-4), k
        assert ra.get("distill", {}).keys() == rb.get("distill", {}).keys()
        assert bool(ra.get("distill")) == distilled
        for k in ra.get("distill", {}):
            assert ra["distill"][k] == pytest.approx(rb["distill"][k], rel=1e-4), k
    for k, v in a["state_dict"].items():
        if "running_" in k or "num_batches" in k:
            continue  # DDP keeps rank 0's batch-norm statistics; they never reach the loss
        torch.testing.assert_close(v, b["state_dict"][k], rtol=1e-4, atol=1e-5, msg=k)


def test_seed_makes_runs_repeat_and_differ(store: Path, tmp_path: Path) -> None:
    a = train(_cfg(store, tmp_path / "a", **{"optim.epochs": 1}), progress=False, log=lambda s: None)
    b = train(_cfg(store, tmp_path / "b", **{"optim.epochs": 1}), progress=False, log=lambda s: None)
    c = train(_cfg(store, tmp_path / "c", seed=1, **{"optim.epochs": 1}), progress=False,
              log=lambda s: None)
    sa, sb, sc = (read_checkpoint(r.out_dir / "last.pt")["state_dict"] for r in (a, b, c))
    k = next(k for k in sa if k.endswith("weight") and sa[k].ndim > 1)
    assert torch.equal(sa[k], sb[k])
    assert not torch.equal(sa[k], sc[k])
    assert np.isfinite([h["score"] for h in a.history]).all()


def test_bad_data_and_label_mismatch_name_the_problem(store: Path, tmp_path: Path) -> None:
    from edge.core.errors import SkelmtlError

    missing = tmp_path / "no_such_store"
    with pytest.raises(SkelmtlError, match=str(missing)):
        train(_cfg(missing, tmp_path / "x"), progress=False, log=lambda s: None)
    # Resuming a run on data with other labels stops before touching the weights.
    cfg = _cfg(store, tmp_path / "r", **{"optim.epochs": 1})
    train(cfg, progress=False, log=lambda s: None)
    other = make_store(tmp_path / "gestures_only", tasks=("gesture",))
    with pytest.raises(SkelmtlError, match="labels do not match.*action: checkpoint"):
        train(_cfg(other, tmp_path / "r", **{"optim.epochs": 2}), resume=True,
              progress=False, log=lambda s: None)
    # Evaluating on a store whose labels the model does not know names them.
    from dataclasses import replace

    from edge.core.clipstore import ClipStore, write_store

    clips = [replace(c, frames=np.array(c.frames), mask=np.array(c.mask)) for c in ClipStore(store)]
    clips[-1] = replace(clips[-1], label="thumbs_up", task="gesture")
    renamed = write_store(clips, tmp_path / "renamed")
    with pytest.raises(SkelmtlError, match=r"gesture labels the model does not know: \['thumbs_up'\]"):
        evaluate_checkpoint(tmp_path / "r" / "best.pt", data=[str(renamed)], split="test")


def test_used_folder_is_refused_unless_resumed_or_overwritten(store: Path, tmp_path: Path) -> None:
    from edge.core.errors import SkelmtlError

    cfg = _cfg(store, tmp_path / "again", **{"optim.epochs": 1})
    train(cfg, progress=False, log=lambda s: None)
    before = {p.name: p.read_bytes() for p in (tmp_path / "again").iterdir() if p.is_file()}
    with pytest.raises(SkelmtlError, match=r"again: already holds a run \(last.pt, best.pt, "
                       r"history.jsonl\); pass --resume to continue it or --overwrite"):
        train(cfg, progress=False, log=lambda s: None)
    after = {p.name: p.read_bytes() for p in (tmp_path / "again").iterdir() if p.is_file()}
    assert after == before  # nothing touched
    train(cfg, overwrite=True, progress=False, log=lambda s: None)
    lines = (tmp_path / "again" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0]


def test_stopping_rule_and_still_improving_mark(store: Path, tmp_path: Path) -> None:
    from trainer.train import _patience_exhausted, best_epoch, still_improving

    hist = [{"score": s} for s in (0.1, 0.5, 0.4, 0.4, 0.45)]
    assert _patience_exhausted(hist, 3) and not _patience_exhausted(hist, 4)
    assert not _patience_exhausted(hist, 0)
    assert still_improving([{"score": s} for s in (0.1, 0.2, 0.3)], 4)
    assert not still_improving(hist, 8)  # best at epoch 2 of 5, tail of 2
    # A real run with patience 2 on a set it cannot improve on stops early and says so.
    cfg = _cfg(store, tmp_path / "stop", **{"optim.epochs": 30, "optim.patience": 2,
                                             "optim.lr": 1e-9, "optim.schedule": "plateau"})
    res = train(cfg, progress=False, log=lambda s: None)
    rows = [json.loads(x) for x in (tmp_path / "stop" / "history.jsonl").read_text().splitlines()]
    assert len(rows) < 30 and rows[-1]["stopped"] == "no better validation score for 2 epochs"
    assert len(rows) - 1 - best_epoch(rows) == 2 and res.epochs_run == len(rows)
    assert all(r["val_loss"] > 0 for r in rows)
    # ties in accuracy go to the lower validation loss
    assert best_epoch([{"score": 0.5, "val_loss": 1.0}, {"score": 0.5, "val_loss": 0.8},
                       {"score": 0.4, "val_loss": 0.1}]) == 1
    # Reaching the maximum while the best epoch is recent marks the history.
    res = train(_cfg(store, tmp_path / "short", **{"optim.epochs": 2, "optim.patience": 40}),
                progress=False, log=lambda s: None)
    last = json.loads((tmp_path / "short" / "history.jsonl").read_text().splitlines()[-1])
    assert last.get("still_improving") is True


def test_run_without_validation_keeps_its_last_epoch(store: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from edge.core.errors import SkelmtlError

    # All of train, no carve: nothing to select on, so best.pt is the last epoch (it was
    # the first epoch before: an unvalidated epoch scored -epoch).
    cfg = _cfg(store, tmp_path / "all", **{"optim.epochs": 3, "data.val_fraction": 0.0})
    lines: list[str] = []
    res = train(cfg, progress=False, log=lines.append)
    assert re.fullmatch(r"epoch 3/3 loss action=\d\.\d{3} gesture=\d\.\d{3}", lines[-1]), lines
    rows = [json.loads(x) for x in (tmp_path / "all" / "history.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == [None, None, None] and res.best_val is None
    assert not any("still_improving" in r or "stopped" in r for r in rows)
    best, last = read_checkpoint(res.best), read_checkpoint(tmp_path / "all" / "last.pt")
    assert best["extra"]["epoch"] == last["extra"]["epoch"] == 2
    for k, v in best["state_dict"].items():
        assert torch.equal(v, last["state_dict"][k]), k
    # A stopping rule with nothing to watch says so and never fires: all epochs, the last kept.
    caplog.set_level(logging.WARNING, logger="trainer.train")
    rule = train(_cfg(store, tmp_path / "rule", **{"optim.epochs": 3, "optim.patience": 1,
                                                   "data.val_fraction": 0.0}),
                 progress=False, log=lambda s: None)
    assert len(rule.history) == 3 and read_checkpoint(rule.best)["extra"]["epoch"] == 2
    assert caplog.messages == [f"{tmp_path / 'rule'}: no validation clips (data.val_fraction 0 "
                               "carved none and there is no val split): the stopping rule "
                               "(optim.patience 1) has nothing to watch, so the run trains all "
                               "3 epochs and keeps the last"]
    # Resumed, it goes on keeping the last epoch; resumed with a carve, it is refused (the
    # data fingerprint does not cover the carve).
    more = train(cfg.replace(**{"optim.epochs": 4}), resume=True, progress=False,
                 log=lambda s: None)
    assert more.best_val is None and read_checkpoint(more.best)["extra"]["epoch"] == 3
    with pytest.raises(SkelmtlError) as e:
        train(cfg.replace(**{"optim.epochs": 5, "data.val_fraction": 0.2}), resume=True,
              progress=False, log=lambda s: None)
    assert str(e.value) == (f"{tmp_path / 'all' / 'last.pt'}: trained without validation "
                            "clips and resumed with them (data.val_fraction or the stores' val "
                            "split changed); start over with --overwrite")
    assert read_checkpoint(tmp_path / "all" / "last.pt")["extra"]["epoch"] == 3


def test_too_few_clips_for_a_step_fail_and_batch_shrinks(store: Path, tmp_path: Path) -> None:
    from edge.core.errors import SkelmtlError

    # batch 64 > the ~36 training clips: the batch shrinks to the epoch, steps are taken
    res = train(_cfg(store, tmp_path / "big", **{"optim.epochs": 1, "optim.batch_size": 64}),
                progress=False, log=lambda s: None)
    assert res.best.is_file() and len(res.history) == 1
    with pytest.raises(SkelmtlError, match="too few for one optimiser step"):
        train(_cfg(store, tmp_path / "one", **{"optim.epochs": 1, "data.epoch_size": 1}),
              progress=False, log=lambda s: None)
    assert not (tmp_path / "one" / "best.pt").exists()


def test_jcd_run_records_the_data_joints(store: Path, tmp_path: Path) -> None:
    cfg = _cfg(store, tmp_path / "jcd", **{"model.name": "jcd_tiny", "optim.epochs": 1,
                                            "preprocess.streams": ["joint"],
                                            "augment.mirror": 0.0})
    res = train(cfg, progress=False, log=lambda s: None)
    ck = load_checkpoint(res.best)
    from edge.core.clipstore import ClipStore

    present = np.zeros(75, bool)
    for c in ClipStore(store):
        present |= np.asarray(c.mask).any(0)
    joints = ck.meta.preprocess.joints
    assert joints and set(joints) <= set(np.flatnonzero(present).tolist())
    assert ck.model.model_args["joints"] == list(joints)
    # Two tasks: the task head sees the joints both tasks' clips have, nothing more.
    args = ck.model.model_args
    per_task = args["task_joints"]
    common = sorted(set.intersection(*(set(per_task.get(t, joints)) for t in args["tasks"])))
    assert len(args["tasks"]) == 2 and args["task_head_joints"] == common


@pytest.mark.parametrize(("change", "message"), [
    # a crafted checkpoint asking for a huge network: refused before anything is allocated
    (lambda a: a.update(blocks=[[1 << 20, 1]] * 4), "model arguments describe .* weights, the file holds"),
    (lambda a: a.update(blocks=[[8, 1]] * 100_000), "model argument 'blocks' is out of bounds"),
    (lambda a: a.update(tasks={f"t{i}": 2 for i in range(1000)}), "model argument 'tasks' is out of bounds"),
    (lambda a: a.update(name="resnet"), "model arguments do not build a model"),
    (lambda a: a.update(in_channels=7000), "model arguments describe"),
])
def test_crafted_model_arguments_are_refused(store: Path, tmp_path: Path, change: object,
                                             message: str) -> None:
    from trainer.checkpoint import CheckpointError

    res = train(_cfg(store, tmp_path / "ok", **{"optim.epochs": 1}), progress=False,
                log=lambda s: None)
    blob = torch.load(res.best, weights_only=True)
    change(blob["model_args"])  # type: ignore[operator]
    bad = tmp_path / "crafted.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match=f"crafted.pt: {message}"):
        load_checkpoint(bad)


@pytest.mark.slow
@pytest.mark.data
def test_jhmdb_learns_to_the_bar(shared_data: Path, tmp_path: Path) -> None:
    """The edge recipe (configs/experiments/edge_base.yaml) on JHMDB split 1: the test
    top-1 of the accuracy table's run, 85.2% in docs/accuracy.md; bar 75% (seed noise on
    176 test clips is several points). About 10 minutes on one CPU thread."""
    import yaml

    from edge.core.clipstore import write_store
    from trainer.datasets import read_dataset
    from trainer.datasets.base import ReadOptions

    repo = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((repo / "configs/experiments/edge_base.yaml").read_text())
    store = write_store(read_dataset(shared_data / "jhmdb", "jhmdb", ReadOptions(split_protocol="1")),
                        tmp_path / "jhmdb1")
    base.update(out=str(tmp_path / "run"), seed=0)
    base["data"]["sources"] = [{"store": str(store)}]
    res = train(from_dict(base), progress=False, log=lambda s: None)
    rep = evaluate_checkpoint(res.best, split="test")
    assert rep["tasks"]["action"]["n"] == 176
    assert rep["tasks"]["action"]["top1"] >= 0.75, rep["tasks"]["action"]["top1"]


def test_mirror_labels_of_no_task_are_refused(store: Path, tmp_path: Path) -> None:
    from edge.core.errors import SkelmtlError

    cfg = _cfg(store, tmp_path / "m", **{"augment.mirror_labels": [["pointL", "pointR"]]})
    with pytest.raises(SkelmtlError, match=r"augment.mirror_labels names labels that are in no "
                       r"task: \['pointL', 'pointR'\]; the labels are \['curl_index'"):
        train(cfg, progress=False, log=lambda s: None)
    assert not (tmp_path / "m" / "best.pt").exists()


def test_cuda_without_a_gpu_is_one_line(store: Path, tmp_path: Path) -> None:
    from edge.core.errors import SkelmtlError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SkelmtlError, match=r"device: cuda, but this torch \(.*\) sees no CUDA GPU"):
        train(_cfg(store, tmp_path / "c", device="cuda"), progress=False, log=lambda s: None)


def test_sigterm_stops_train_cleanly_and_resume_continues(store: Path, tmp_path: Path) -> None:
    """`docker stop` sends SIGTERM: train ends with 143 within the epoch it was in, its
    last.pt (written atomically after each epoch) loads, and --resume carries on."""
    import signal
    import subprocess
    import sys

    import yaml

    cfg = _cfg(store, tmp_path / "run", **{"optim.epochs": 200, "optim.patience": 0})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    p = subprocess.Popen([sys.executable, "-m", "skelmtl.cli", "train", "--config", str(path),
                          "--no-progress"], stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    for line in p.stderr:  # bounded by the run itself: it ends after 200 epochs at most
        if "epoch 2/200" in line:
            break
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    blob = read_checkpoint(tmp_path / "run" / "last.pt")
    done = blob["extra"]["epoch"] + 1
    assert 2 <= done < 200
    res = train(cfg.replace(**{"optim.epochs": done + 1}), resume=True, progress=False,
                log=lambda s: None)
    assert res.epochs_run == 1 and res.history[-1]["epoch"] == done


def test_ema_weights_are_what_is_validated_saved_and_resumed(store: Path, tmp_path: Path) -> None:
    """With ``optim.ema_epochs`` best.pt holds the averaged weights, and they score on
    the validation split exactly what the history says; last.pt keeps the raw weights
    and the average, so a resumed run continues the same average."""
    from trainer.data import ClipDataset, Composite
    from trainer.train import accuracy_per_task, predict

    kw = {"model.name": "jcd_tiny", "preprocess.streams": ["joint"], "augment.mirror": 0.0,
          "optim.ema_epochs": 2.0, "optim.epochs": 3, "optim.schedule": "plateau"}
    cfg = _cfg(store, tmp_path / "ema", **kw)
    res = train(cfg, progress=False, log=lambda s: None)
    ck = load_checkpoint(res.best)
    comp = Composite(cfg.data, cfg.tasks)
    val = ClipDataset(comp, comp.splits(cfg.seed)["val"], ck.meta.preprocess)
    got = accuracy_per_task(predict(ck.model, val, comp.tasks, torch.device("cpu")), comp.tasks)
    best = max(res.history, key=lambda r: (r["score"], -r["val_loss"]))
    assert got == pytest.approx(best["val"], abs=0)
    blob = read_checkpoint(res.out_dir / "last.pt")
    raw, avg = blob["state_dict"], blob["extra"]["ema"]["module"]
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].is_floating_point())
    # Resume from epoch 2 of 3 gives what the uninterrupted run gave.
    part = train(_cfg(store, tmp_path / "ema2", **{**kw, "optim.epochs": 2}), progress=False,
                 log=lambda s: None)
    assert part.epochs_run == 2
    done = train(_cfg(store, tmp_path / "ema2", **kw), resume=True, progress=False,
                 log=lambda s: None)
    assert [r["val"] for r in done.history] == [r["val"] for r in res.history]
    resumed = read_checkpoint(tmp_path / "ema2" / "last.pt")["extra"]["ema"]["module"]
    for k in avg:
        torch.testing.assert_close(resumed[k], avg[k], msg=f"{k} differs after resume")


def test_ema_ramps_its_decay_and_averages_float_state_only() -> None:
    """W <- d W + (1 - d) W_model with d = min(decay, (1 + n) / (10 + n)) on weights and
    batch-norm statistics; integer state is copied, the joint-index buffers stay exact."""
    from trainer.models import create_model
    from trainer.train import _Ema

    torch.manual_seed(0)
    model = create_model("jcd_tiny", in_channels=3, tasks={"a": 3, "b": 2}, dims=2,
                         joints=[0, 11, 12, 13, 14, 15, 16], task_joints={"a": [11, 12, 13, 14]})
    ema = _Ema(model, decay=0.75)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    index = {k: b.clone() for k, b in model.named_buffers() if not b.is_floating_point()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    kept = 1.0
    for n in range(1, 5):
        ema.update(model)
        kept *= min(0.75, (1 + n) / (10 + n))  # 0.18, 0.25, 0.31, 0.36: the ramp
    params = dict(model.named_parameters())
    for k, v in ema.module.state_dict().items():
        if k in params:
            torch.testing.assert_close(v, before[k] + 1.0 - kept)
    got = dict(ema.module.named_buffers())
    assert index and all(torch.equal(got[k], b) for k, b in index.items())
    assert ema.state_dict()["updates"] == 4


def test_pass_sampling_sees_every_clip_once_per_epoch(store: Path) -> None:
    from trainer.config import DataConfig, SourceConfig
    from trainer.data import Composite, CompositeSampler

    comp = Composite(DataConfig(sources=(SourceConfig(str(store)),)))
    pos = list(range(len(comp.refs)))[:37]
    one = CompositeSampler(comp, pos, [1.0], 0, seed=3, sampling="pass")
    epochs = []
    for e in range(2):
        one.set_epoch(e)
        epochs.append(list(one))
        assert sorted(epochs[-1]) == list(range(37))       # a permutation: all, once
    assert epochs[0] != epochs[1]                           # a new order each epoch
    one.set_epoch(0)
    assert list(one) == epochs[0]                           # fixed by (seed, epoch)
    # DDP: two ranks split one permutation into equal, disjoint halves (one clip left out)
    ranks = [CompositeSampler(comp, pos, [1.0], 0, seed=3, rank=r, world=2, sampling="pass")
             for r in (0, 1)]
    a, b = (list(r) for r in ranks)
    assert len(a) == len(b) == 18 and not set(a) & set(b)
    # the old draw, for contrast: with replacement, so some clips repeat in an epoch
    drawn = list(CompositeSampler(comp, pos, [1.0], 0, seed=3))
    assert len(drawn) == 37 and len(set(drawn)) < 37



@pytest.mark.parametrize(("sampling", "clips", "batch", "drop"), [
    ("weighted", 37, 16, True),    # the old rule: only full batches
    ("pass", 37, 16, False),       # 16 + 16 + 5: every clip trains
    ("pass", 33, 16, True),        # 16 + 16 + 1: batch norm cannot train on one clip
    ("pass", 32, 16, False),
])
def test_last_partial_batch_rule(sampling: str, clips: int, batch: int, drop: bool) -> None:
    from trainer.train import drop_last_batch

    assert drop_last_batch(sampling, clips, batch) is drop


def test_pass_sampling_trains_and_is_recorded(store: Path, tmp_path: Path) -> None:
    res = train(_cfg(store, tmp_path / "pass", **{"optim.epochs": 1, "optim.batch_size": 16,
                                                 "data.sampling": "pass"}),
                progress=False, log=lambda s: None)
    ck = load_checkpoint(res.best)
    assert ck.config["data"]["sampling"] == "pass" and len(res.history) == 1


def test_splice_replaces_at_most_half_from_the_adjacent_end_of_the_other_clip() -> None:
    from trainer.data import splice

    x = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    m = np.ones((10, 3), bool)
    other = 100 + np.arange(6, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    om = np.zeros((6, 3), bool)
    seen = set()
    for seed in range(60):
        y, ym = splice(x, m, other, om, np.random.default_rng(seed))
        assert y.shape == x.shape and ym.shape == m.shape
        k = int((y[:, 0, 0] >= 100).sum())
        assert 1 <= k <= 5 and int((~ym[:, 0]).sum()) == k
        if y[0, 0, 0] >= 100:   # the other clip came before: its last k frames, then ours
            np.testing.assert_array_equal(y[:k, 0, 0], np.arange(6 - k, 6) + 100)
            np.testing.assert_array_equal(y[k:, 0, 0], np.arange(k, 10))
            seen.add(("before", k))
        else:                   # it comes after: ours, then its first k frames
            np.testing.assert_array_equal(y[:10 - k, 0, 0], np.arange(10 - k))
            np.testing.assert_array_equal(y[10 - k:, 0, 0], np.arange(k) + 100)
            seen.add(("after", k))
    assert {s for s, _ in seen} == {"before", "after"} and {k for _, k in seen} == {1, 2, 3, 4, 5}
    np.testing.assert_array_equal(x[:, 0, 0], np.arange(10))   # the inputs are untouched


def test_spliced_items_keep_their_label_and_unspliced_runs_repeat(store: Path) -> None:
    from trainer.config import AugmentConfig, DataConfig, SourceConfig
    from trainer.data import Augmenter, ClipDataset, Composite

    comp = Composite(DataConfig(sources=(SourceConfig(str(store)),)))
    pre = _cfg(store, Path("unused")).preprocess
    idx = list(range(12))

    def items(**kw: float) -> list[tuple[torch.Tensor, int, int]]:
        aug = Augmenter(AugmentConfig(mirror=0.0, rotate_deg=0, scale=0, crop=1.0,
                                      drop_hand=0, drop_hands=0, **kw), comp.labels, comp.tasks)
        return [ClipDataset(comp, idx, pre, aug, seed=5)[k] for k in range(len(idx))]

    plain, never, always = items(), items(splice=0.0), items(splice=1.0)
    for (a, ta, la), (b, tb, lb), (_c, tc, lc), i in zip(plain, never, always, idx):
        r = comp.refs[i]
        assert (ta, la) == (tb, lb) == (tc, lc) == (r.task, r.label)  # the clip's own label
        assert torch.equal(a, b)                                          # splice 0: as before
    assert sum(not torch.equal(a, c) for (a, _, _), (c, _, _) in zip(plain, always)) >= 10
    # Every augmentation at its default, two epochs: the items hash as they did at commit
    # 9de0b76, before splice and hold existed (they draw only when enabled).
    h = hashlib.sha256()
    ds = ClipDataset(comp, idx, pre, Augmenter(AugmentConfig(), comp.labels, comp.tasks), seed=5)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for k in range(len(idx)):
            x, t, lab = ds[k]
            h.update(x.numpy().tobytes())
            h.update(bytes([t, lab]))
    assert h.hexdigest()[:16] == "377317aec93f47c7"
    with pytest.raises(ValueError, match=r"^augment.splice is a probability in \[0, 1\], got 1.5$"):
        AugmentConfig(splice=1.5)


def test_task_only_splices_train_the_task_head_alone(store: Path, tmp_path: Path) -> None:
    import torch.nn.functional as F

    from trainer.config import AugmentConfig, DataConfig, SourceConfig
    from trainer.data import Augmenter, ClipDataset, Composite
    from trainer.losses import NO_LABEL, masked_task_losses

    g = torch.Generator().manual_seed(0)
    out = {"logits_a": torch.randn(4, 3, generator=g), "logits_b": torch.randn(4, 2, generator=g),
           "task_logits": torch.randn(4, 2, generator=g)}
    t, lab = torch.tensor([0, 0, 1, 1]), torch.tensor([2, NO_LABEL, 1, NO_LABEL])
    got = masked_task_losses(out, t, lab, ["a", "b"])
    # the class heads: only the labelled sample of each task; the task head: all four
    assert torch.allclose(got["a"], F.cross_entropy(out["logits_a"][:1], lab[:1]))
    assert torch.allclose(got["b"], F.cross_entropy(out["logits_b"][2:3], lab[2:3]))
    assert torch.allclose(got["task"], F.cross_entropy(out["task_logits"], t))

    # the step's denominators: labelled samples per task, then all (the task head's)
    from trainer.train import step_counts
    assert step_counts(t, lab, 2).tolist() == [1.0, 1.0, 4.0]

    comp = Composite(DataConfig(sources=(SourceConfig(str(store)),)))
    aug = Augmenter(AugmentConfig(mirror=1.0, splice=1.0, splice_task_only=True),
                    comp.labels, comp.tasks)
    items = [ClipDataset(comp, list(range(8)), _cfg(store, tmp_path).preprocess, aug)[k]
             for k in range(8)]
    assert [(ti, li) for _, ti, li in items] == [(comp.refs[i].task, NO_LABEL) for i in range(8)]
    cfg = _cfg(store, tmp_path / "run", augment=AugmentConfig(splice=0.5, splice_task_only=True))
    cfg = cfg.replace(optim=cfg.optim.__class__(**{**cfg.optim.__dict__, "epochs": 2}))
    result = train(cfg, progress=False)
    assert result.history[-1]["epoch"] == 1 and np.isfinite(list(result.history[-1]["loss"].values())).all()


def test_hold_carries_the_pose_one_frame_never_two_and_leaves_the_hands() -> None:
    from trainer.data import hold_body

    x = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 75, 3), np.float32)
    m = np.ones((20, 75), bool)
    m[7, :] = False
    y, ym = hold_body(x, m, np.random.default_rng(3))
    src = y[:, 0, 0].astype(int)
    held = src != np.arange(20)
    assert not held[0] and 4 <= held.sum() <= 10                        # about a third
    assert np.array_equal(src[held], np.flatnonzero(held) - 1)          # the frame before
    assert not (held[1:] & held[:-1]).any()                             # never two in a row
    np.testing.assert_array_equal(y[:, 33:], x[:, 33:])                 # hands untouched
    np.testing.assert_array_equal(ym[:, :33], m[src][:, :33])           # the mask follows
    np.testing.assert_array_equal(x[:, 0, 0], np.arange(20))            # input unchanged
