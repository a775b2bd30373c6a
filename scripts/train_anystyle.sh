#!/usr/bin/env bash
# The any-painting network (universal style transfer): the decoders of every level down from
# DEEPEST, trained to invert ImageNet VGG-16 on the shared training photos. No painting is used.
#
# In the background on THREADS cores (default one), niced, outside the work tree; run it again
# after a crash, a reboot or a new session and it resumes from the newest checkpoint.
#
#   scripts/train_anystyle.sh                         # log in $RUN_DIR/train.log
#   ITERS=20000 IMAGE_SIZE=256 BATCH=8 THREADS=16 scripts/train_anystyle.sh   # a bigger machine
set -euo pipefail

cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-$HOME/runs/anystyle}
DEEPEST=${DEEPEST:-relu3_1}
ITERS=${ITERS:-1500}
IMAGE_SIZE=${IMAGE_SIZE:-128}
BATCH=${BATCH:-4}
LR=${LR:-5e-4}
THREADS=${THREADS:-1}
OUT=$RUN_DIR/anystyle.safetensors
mkdir -p "$RUN_DIR"

RESUME=()
if compgen -G "$RUN_DIR/anystyle.ckpt/step-*.safetensors" > /dev/null; then
    RESUME=(--resume)
fi

# 128 px crops: a decoder is a local operator (its receptive field at relu3_1 is ~40 px), and a
# 256 px step costs 4x (measured ~6 s/step at 128 px, batch 4, on one AVX2 core).
NOTES="Universal style transfer's decoders to ${DEEPEST} (Li et al. 2017), trained only to invert ImageNet VGG-16 \
(pixel + relative feature reconstruction) on photos, ${IMAGE_SIZE} px crops, batch ${BATCH}, lr ${LR} cosine over \
${ITERS} steps (scripts/train_anystyle.sh)."

OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS nohup nice -n 10 .venv/bin/fastpercept train anystyle \
    --data ../shared/data/train --deepest "$DEEPEST" --image-size "$IMAGE_SIZE" --batch-size "$BATCH" \
    --lr "$LR" --lr-schedule cosine --iters "$ITERS" --checkpoint-every 100 --log-every 10 --seed 0 --workers 0 \
    --notes "$NOTES" -o "$OUT" "${RESUME[@]}" >> "$RUN_DIR/train.log" 2>&1 &
echo "pid $! log $RUN_DIR/train.log ${RESUME[*]:-(new run)}"
