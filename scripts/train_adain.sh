#!/usr/bin/env bash
# The any-painting network's second candidate (AdaIN, Huang & Belongie 2017): the decoder at
# LEVEL trained on the paper's objective with the shared training photos as content and the
# shared paintings as styles, except the held-out ones (HELD_OUT) that benchmarks/anystyle.py
# measures on. Two stages, each started from the decoders of DECODERS_FROM (later ones win):
#
#   1. SINGLE_LEVEL=1: AdaIN at LEVEL alone, from the shipped anystyle model's inverting decoder.
#   2. the cascade: AdaIN at LEVEL, then the WCT levels below with the shipped inverting decoders;
#      only LEVEL's decoder learns, through the whole cascade (DECODERS_FROM="anystyle STAGE1").
#
# In the background on THREADS cores (default one), niced, outside the work tree; run it again
# after a crash, a reboot or a new session and it resumes from the newest checkpoint.
#
#   SINGLE_LEVEL=1 RUN_DIR=~/runs/adain scripts/train_adain.sh          # log in $RUN_DIR/train.log
#   RUN_DIR=~/runs/adain-cascade DECODERS_FROM="anystyle ~/runs/adain/anystyle-adain.safetensors" \
#       scripts/train_adain.sh
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
SINGLE_LEVEL=${SINGLE_LEVEL:-0}
DECODERS_FROM=${DECODERS_FROM:-anystyle}
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

LEVELS=(--single-level)
WHAT="${TRANSFORM} at ${LEVEL} alone"
if [[ $SINGLE_LEVEL != 1 ]]; then
    LEVELS=()
    WHAT="${TRANSFORM} at ${LEVEL}, then WCT below it (only ${LEVEL}'s decoder learns, through the cascade)"
fi
read -r -a SOURCES <<< "$DECODERS_FROM"
NOTES="${WHAT} (Huang & Belongie 2017), decoders from: $(for m in "${SOURCES[@]}"; do basename "$m"; done | paste -sd' '), \
trained on the paper's objective (style weight ${STYLE_WEIGHT}) with $(ls "$RUN_DIR/styles-train" | wc -l) paintings \
(held out: ${HELD_OUT}), ${IMAGE_SIZE} px crops, batch ${BATCH}, lr ${LR} cosine over ${ITERS} steps \
(scripts/train_adain.sh)."

OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS nohup nice -n 10 .venv/bin/fastpercept train anystyle \
    --data "$DATA/train" --loss objective "${LEVELS[@]}" --deepest "$LEVEL" --transform "$TRANSFORM" \
    --paintings "$RUN_DIR/styles-train" --style-weight "$STYLE_WEIGHT" --decoders-from "${SOURCES[@]}" \
    --image-size "$IMAGE_SIZE" --batch-size "$BATCH" --lr "$LR" --lr-schedule cosine --iters "$ITERS" \
    --checkpoint-every 50 --log-every 10 --seed 0 --workers 0 \
    --notes "$NOTES" -o "$OUT" "${RESUME[@]}" >> "$RUN_DIR/train.log" 2>&1 &
echo "pid $! log $RUN_DIR/train.log ${RESUME[*]:-(new run)}"
