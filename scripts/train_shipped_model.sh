#!/usr/bin/env bash
# Reproduce the shipped `reasonembed-smollm2-135m` (Redapter) and its InfoNCE twin, then measure both.
#
#   bash scripts/train_shipped_model.sh            # every step; each one resumes where a killed run stopped
#   STEPS="train eval" bash scripts/train_shipped_model.sh
#
# Runs on CPU (synthesis ~30 min, each model ~10-30 min on 2 shared cores) or a CUDA GPU (bf16 turns on by itself). Seeds come from the
# offline CHAMP task's TRAIN side only; evaluation is on its TEST side (`reasonembed-rag bright --data offline`).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PY=.venv/bin
STEPS=${STEPS:-"synthesize train eval card"}
DATA=data/remixer-champ
RESULTS=reasonembed_rag/trained_models/reasonembed-smollm2-135m/results
THREADS=${THREADS:-1}   # torch threads per job; 1 was fastest on the busy 2-core development machine

if [[ " $STEPS " == *" synthesize "* ]]; then
  # ReMixer through the local SmolLM2 server (started and stopped by the command), scores read from the score
  # token's logits with per-query calibration; plus the train side's real gold rows as a separate task file.
  "$PY/reasonembed-train" synthesize --seeds offline --output "$DATA" --max-seeds "${MAX_SEEDS:-48}" \
    --annotator-logits --logit-calibration query --keep-candidates 15 --llm-max-tokens 128 --train-side-rows \
    --llm-threads "$THREADS"
fi

COMMON=(--data "$DATA/train" --model smollm2-135m --lora-rank 32 --lora-alpha 64 --lr 2e-4 --warmup-ratio 0.1
  --epochs 1 --batch-size 4 --group-size 4 --query-max-length 128 --passage-max-length 256 --temperature 0.02
  --redapter-warmup-steps 5 --seed 42 --save-steps 5 --adapter-dtype float16 --sub-batch-size 4 --pooling mean)
if [[ " $STEPS " == *" train "* ]]; then
  # The two runs share data, batches and steps; only the loss differs. Run side by side, one thread each.
  mkdir -p outputs
  train() {  # LOSS OUTPUT NAME: resumes from the newest checkpoint, else replaces the folder (git restores it)
    local resume=(--overwrite)
    compgen -G "outputs/checkpoints/$1/checkpoint-*" > /dev/null && resume=(--resume)
    OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" train "${COMMON[@]}" --loss "$1" "${resume[@]}" \
      --output "$2" --checkpoint-dir "outputs/checkpoints/$1" --name "$3" > "outputs/train-$1.log" 2>&1
  }
  train redapter reasonembed_rag/trained_models/reasonembed-smollm2-135m reasonembed-smollm2-135m &
  redapter=$!
  train infonce outputs/reasonembed-basic-smollm2-135m reasonembed-basic-smollm2-135m &
  infonce=$!
  wait "$redapter" && wait "$infonce"
fi

if [[ " $STEPS " == *" eval "* ]]; then
  mkdir -p "$RESULTS"
  for model in reasonembed-smollm2-135m outputs/reasonembed-basic-smollm2-135m smollm2-135m minilm-l6 bm25; do
    name=$(basename "$model")
    OMP_NUM_THREADS=2 "$PY/reasonembed-rag" bright --data offline --model "$model" --output "$RESULTS/$name.json"
  done
fi

if [[ " $STEPS " == *" card "* ]]; then
  "$PY/reasonembed-train" card reasonembed_rag/trained_models/reasonembed-smollm2-135m --results "$RESULTS"/*.json
fi
