"""Held-out accuracy of a cross-validation study's runs one by one and averaged.

Usage: python tools/heldout_ensemble.py runs/tuning/fpha/scale_leaky \
           runs/tuning/fpha/scale_leaky/seed1 runs/tuning/fpha/scale_leaky/seed2 \
           [--checkpoint last.pt]

Why: distillation (trainer/distill.py) can only give a student what its teachers' average
knows beyond any one of them. This scores each variant folder's ``fold_*/<checkpoint>`` on
that fold's held-out split (the validation split of its fold store), and the mean of their
softmax outputs, pooled over the folds. ``last.pt`` by default: ``best.pt`` was picked by
the held-out subject itself.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger("heldout_ensemble")


def heldout_probabilities(checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """Softmax ``(N, K)`` of the checkpoint's one class head on its held-out split, and the
    labels ``(N,)``, through the trainer's torch backend and the one preprocessing."""
    from edge.core.metadata import logits_name
    from trainer.backend import TorchBackend
    from trainer.data import ClipDataset, Composite
    from trainer.evaluate import training_config

    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: no such checkpoint")
    be = TorchBackend(checkpoint)
    cfg = training_config(checkpoint, be.meta)
    if cfg is None or len(be.meta.tasks) != 1:
        raise SystemExit(f"{checkpoint}: needs a one-task checkpoint with its training config")
    comp = Composite(cfg.data)
    ds = ClipDataset(comp, comp.splits(cfg.seed)["val"], be.meta.preprocess)
    items = [ds[k] for k in range(len(ds))]
    x = np.stack([np.asarray(it[0]) for it in items]).astype(np.float32)
    z = be.infer(x)[logits_name(be.meta.tasks[0])]
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), np.asarray([int(it[2]) for it in items])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", type=Path, help="folders holding fold_*/")
    ap.add_argument("--checkpoint", default="last.pt")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folds = sorted(p.name for p in args.variants[0].glob("fold_*"))
    right = np.zeros(len(args.variants) + 1)
    n = 0
    for fold in folds:
        probs, y = zip(*(heldout_probabilities(v / fold / args.checkpoint)
                         for v in args.variants))
        if any(not np.array_equal(y[0], other) for other in y):
            raise SystemExit(f"{fold}: the runs' held-out splits differ")
        hits = [(p.argmax(1) == y[0]).sum() for p in probs]
        hits.append((np.mean(probs, 0).argmax(1) == y[0]).sum())
        right += hits
        n += len(y[0])
        logger.info("%s (%d clips): each %s, averaged %.1f", fold, len(y[0]),
                    ", ".join(f"{100 * h / len(y[0]):.1f}" for h in hits[:-1]),
                    100 * hits[-1] / len(y[0]))
    logger.info("pooled (%d clips): each %s, averaged %.1f", n,
                ", ".join(f"{100 * r / n:.1f}" for r in right[:-1]), 100 * right[-1] / n)


if __name__ == "__main__":
    main()
