#!/usr/bin/env bash
# The style-artifact recipe (docs/style-artifacts.md): each shipped style that paints blobs,
# fine-tuned from its shipped weights for 1,500 steps at lr 1e-4 on its card's objective.
#
# One style after another, in the background, on ONE core, niced, outside the work tree; run it
# again after a crash, a reboot or a new session and it resumes where it stopped (a style with a
# finished model file is skipped). Measure each result with benchmarks/style_blobs.py and
# `fastpercept eval style --crop` before it replaces a shipped model.
#
#   setsid nohup scripts/finetune_styles.sh &       # log in $RUN_DIR/NAME.log
#   STYLES="udnie" ITERS=3000 scripts/finetune_styles.sh
set -uo pipefail

cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-$HOME/runs/style-finetune}
ITERS=${ITERS:-1500}
STYLES=${STYLES:-"composition_vii udnie the_scream wave_crop"}
mkdir -p "$RUN_DIR"

for style in $STYLES; do
    out=$RUN_DIR/$style.safetensors
    [ -f "$out" ] && continue
    weight=$(.venv/bin/fastpercept info "$style" --json | .venv/bin/python -c \
        "import json, sys; print(json.load(sys.stdin)['style_weight'])")
    resume=()
    compgen -G "$RUN_DIR/$style.ckpt/step-*.safetensors" > /dev/null && resume=(--resume)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 .venv/bin/fastpercept train style \
        --data ../shared/data/train --style-image "../shared/data/styles/$style.jpg" --init-from "$style" \
        --style-weight "$weight" --style-size 512 --image-size 256 --batch-size 4 --lr 1e-4 \
        --iters "$ITERS" --checkpoint-every 50 --seed 1 --workers 0 -o "$out" "${resume[@]}" \
        --notes "Fine-tuned from the shipped $style for $ITERS steps at lr 1e-4: the style-artifact recipe \
(a constant lr 1e-3 finish paints flat white/black blobs; a 1e-4 stage removes them; docs/style-artifacts.md)." \
        >> "$RUN_DIR/$style.log" 2>&1 || exit $?
done
