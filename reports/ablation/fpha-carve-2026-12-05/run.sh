#!/usr/bin/env bash
# Where F-PHAB's test gain of the cosine recipe comes from (analysis after the choice, not
# a selection): the table's recipe (cosine 150 epochs, all of train, last epoch) retrained
# with the 10% validation carve back, scored at the epoch the carve picks (best.pt) and at
# the last epoch (last.pt). Resumable: a seed whose two reports exist is skipped.
#   bash reports/ablation/fpha-carve-2026-12-05/run.sh [SEED ...]   (default 0 1 2)
set -euo pipefail
here=reports/ablation/fpha-carve-2026-12-05
for s in "${@:-0 1 2}"; do
  for s1 in $s; do
    run=runs/ablation/fpha-carve/seed$s1
    [[ -f $here/seed$s1.best.json && -f $here/seed$s1.last.json ]] && continue
    skelmtl train --config runs/accuracy/fpha/v0/seed0/config.yaml --no-progress \
      --out "$run" --resume --set seed=$s1 data.val_fraction=0.1
    for ck in best last; do
      skelmtl eval "$run/$ck.pt" --split test -o "$run/eval_$ck" > /dev/null
      cp "$run/eval_$ck/report.json" "$here/.seed$s1.$ck.json.tmp"   # atomic: a kill leaves
      mv "$here/.seed$s1.$ck.json.tmp" "$here/seed$s1.$ck.json"       # no half file counted done
    done
  done
done
