#!/usr/bin/env bash
# The any-painting network's second candidate (AdaIN, Huang & Belongie 2017): one decoder at
# LEVEL, started from the shipped universal-style-transfer decoder of that level, trained on the
# paper's objective with the shared training photos as content and the shared paintings as
# styles, except the held-out ones (HELD_OUT) that benchmarks/anystyle.py measures on.
#
# In the background on THREADS cores (default one), niced, outside the work tree; run it again
# after a crash, a reboot or a new session and it resumes from the newest checkpoint.
#
#   scripts/train_adain.sh                                # log in $RUN_DIR/train.log
#   ITERS=20000 IMAGE_SIZE=256 BATCH=8 THREADS=16 scripts/train_adain.sh   # a bigger machine
set -euo pipefail

cd "$(dirname "$0")/.."
DATA=$(cd ../shared/data && pwd)
RUN_DIR=${RUN_DIR:-$HOME/runs/adain}
LEVEL=${LEVEL:-relu3_1}
TRANSFORM=${TRANSFORM:-adain}
ITERS=${ITERS:-2000}
IMAGE_SIZE=${IMAGE_SIZE:-128}
BATCH=${BATCH:-4}
LR=${LR:-1e-4}
STYLE_WEIGHT=${STYLE_WEIGHT:-5}
THREADS=${THREADS:-1}
HELD_OUT=${HELD_OUT:-"mondrian sketch starry_night_crop la_muse"}
OUT=$RUN_DIR/anystyle-$TRANSFORM.safetensors
mkdir -p "$RUN_DIR/styles-train"

# The training paintings: every one of styles/ and styles-extra/ but the held-out ones (links,
# so the card's digest is of the same names and sizes wherever the data lies).
for f in "$DATA"/styles/* "$DATA"/styles-extra/*; do
    name=$(basename "$f")
    [[ " $HELD_OUT " == *" ${name%.*} "* ]] || ln -sfn "$f" "$RUN_DIR/styles-train/$name"
done

RESUME=()
if compgen -G "${OUT%.safetensors}.ckpt/step-*.safetensors" > /dev/null; then
    RESUME=(--resume)
fi

NOTES="${TRANSFORM} at ${LEVEL} (Huang & Belongie 2017), the decoder started from the shipped anystyle model's, \
trained on the paper's objective (style weight ${STYLE_WEIGHT}) with $(ls "$RUN_DIR/styles-train" | wc -l) paintings \
(held out: ${HELD_OUT}), ${IMAGE_SIZE} px crops, batch ${BATCH}, lr ${LR} cosine over ${ITERS} steps \
(scripts/train_adain.sh)."

OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS nohup nice -n 10 .venv/bin/fastpercept train anystyle \
    --data "$DATA/train" --loss objective --single-level --deepest "$LEVEL" --transform "$TRANSFORM" \
    --paintings "$RUN_DIR/styles-train" --style-weight "$STYLE_WEIGHT" --decoders-from anystyle \
    --image-size "$IMAGE_SIZE" --batch-size "$BATCH" --lr "$LR" --lr-schedule cosine --iters "$ITERS" \
    --checkpoint-every 50 --log-every 10 --seed 0 --workers 0 \
    --notes "$NOTES" -o "$OUT" "${RESUME[@]}" >> "$RUN_DIR/train.log" 2>&1 &
echo "pid $! log $RUN_DIR/train.log ${RESUME[*]:-(new run)}"
