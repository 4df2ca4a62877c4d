#!/usr/bin/env bash
# Reproduce the shipped models and their InfoNCE twins, then measure them, with settings chosen out of domain by
# scripts/sweep_minilm.py (training/README.md), never on the test side:
#   `reasonembed-smollm2-135m` (steps champ-data train eval card): trained on what the validation champ_concepts_ood
#                              leaves out (`champ-data`);
#   `reasonembed-minilm-l6`    (steps champ-data minilm minilm-eval): settings chosen by leave-one-category-out
#                              cross-validation over the TRAIN side, then refit on the whole TRAIN side
#                              (`champ-data --hold-out none`).
# `synthesize` regenerates the ReMixer rows that champ-data filters (data/remixer-champ, committed).
#
#   bash scripts/train_shipped_model.sh            # every step; each one resumes where a killed run stopped
#   STEPS="champ-data train eval card" bash scripts/train_shipped_model.sh
#   STEPS="champ-data minilm minilm-eval" bash scripts/train_shipped_model.sh
#   STEPS="remix" bash scripts/train_shipped_model.sh   # ReMixer + round-trip filter -> data/champ-ood/roundtrip
#
# Runs on CPU (synthesis ~30 min, each model ~10-40 min on 2 shared cores) or a CUDA GPU (bf16 turns on by itself).
# Seeds come from the offline CHAMP task's TRAIN side only; the test side is `reasonembed-rag bright --data offline`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
PY=.venv/bin
STEPS=${STEPS:-"synthesize champ-data train eval card remix minilm minilm-eval"}
DATA=data/remixer-champ
RESULTS=reasonembed_rag/trained_models/reasonembed-smollm2-135m/results
MINILM_DATA=data/champ-ood/mix   # what the validation leaves out (reasonembed-smollm2-135m, the checks)
REFIT_DATA=data/champ-all/mix    # the whole TRAIN side, nothing held out (reasonembed-minilm-l6)
THREADS=${THREADS:-1}   # torch threads per job; 1 was fastest on the busy 2-core development machine

if [[ " $STEPS " == *" synthesize "* ]]; then
  # ReMixer through the local SmolLM2 server (started and stopped by the command), scores read from the score
  # token's logits with per-query calibration; plus the train side's real gold rows as a separate task file.
  "$PY/reasonembed-train" synthesize --seeds offline --output "$DATA" --max-seeds "${MAX_SEEDS:-48}" \
    --annotator-logits --logit-calibration query --keep-candidates 15 --llm-max-tokens 128 --train-side-rows \
    --llm-threads "$THREADS"
fi

if [[ " $STEPS " == *" champ-data "* ]]; then
  # Gold rows of the TRAIN problems outside the held-out categories (CHAMP hints + worked solution as the reasoning
  # query, negatives mined by MiniLM among the concepts not held out) + the ReMixer rows minus everything held out.
  OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" champ-data --output "$MINILM_DATA" --remixer "$DATA" --miner minilm-l6
  # The same rows with nothing held out: the refit of settings already chosen out of domain.
  OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" champ-data --output "$REFIT_DATA" --remixer "$DATA" \
    --miner minilm-l6 --hold-out none
fi

SMOL=reasonembed_rag/trained_models/reasonembed-smollm2-135m
SMOL_ALPHA=${SMOL_ALPHA:-0.5}   # WiSE-FT weight chosen on the validation (0 = backbone, 1 = as trained)
COMMON=(--data data/champ-ood/mix --model smollm2-135m --pooling mean --lora-rank 32 --lora-alpha 64 --lr 2e-4
  --warmup-ratio 0.1 --epochs 1 --batch-size 4 --group-size 4 --query-max-length 128 --passage-max-length 256
  --reasoning-query-max-length 256 --temperature 0.02 --redapter-warmup-steps 2 --mask-false-negatives --seed 42
  --save-steps 5 --adapter-dtype float16 --sub-batch-size 4)
if [[ " $STEPS " == *" train "* ]]; then
  # The two runs share data, batches and steps; only the loss differs. Run side by side, one thread each.
  mkdir -p outputs
  train() {  # LOSS OUTPUT NAME: resumes from the newest checkpoint, else replaces the folder (git restores it)
    local resume=(--overwrite)
    compgen -G "outputs/checkpoints/smol-$1/checkpoint-*" > /dev/null && resume=(--resume)
    OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" train "${COMMON[@]}" --loss "$1" "${resume[@]}" \
      --output "$2" --checkpoint-dir "outputs/checkpoints/smol-$1" --name "$3" > "outputs/train-smol-$1.log" 2>&1
  }
  train redapter "$SMOL" reasonembed-smollm2-135m &
  redapter=$!
  train infonce outputs/reasonembed-basic-smollm2-135m reasonembed-basic-smollm2-135m &
  infonce=$!
  wait "$redapter" && wait "$infonce"
  "$PY/reasonembed-train" wise-ft "$SMOL" --alpha "$SMOL_ALPHA"
  "$PY/reasonembed-train" wise-ft outputs/reasonembed-basic-smollm2-135m --alpha "$SMOL_ALPHA"
fi

if [[ " $STEPS " == *" eval "* ]]; then
  mkdir -p "$RESULTS"
  for model in reasonembed-smollm2-135m outputs/reasonembed-basic-smollm2-135m smollm2-135m minilm-l6 bm25; do
    OMP_NUM_THREADS=2 "$PY/reasonembed-rag" bright --data offline --tasks champ_concepts,champ_concepts_ood \
      --model "$model" --output "$RESULTS/$(basename "$model").json"
  done
fi

if [[ " $STEPS " == *" card "* ]]; then
  "$PY/reasonembed-train" card "$SMOL" --results "$RESULTS"/*.json
fi

# ---- ReMixer at scale with the round-trip consistency filter (training/README.md, "ReMixer at scale"): every
# TRAIN-side CHAMP seed, 3 queries each, plus WordNet domain nouns, laws and equations, through the local SmolLM2
# server (continuous batching); a query is kept only when BM25 ranks its seed (a CHAMP problem: a gold concept) in its
# top 10 and the annotator agrees. Nothing is held out at synthesis: `champ-data` and `sweep_minilm.py cv` drop, per
# fold, the queries seeded by a held-out problem or concept (they read each query's seed from work/).
# (data/remixer-roundtrip is the first, smaller run of this step: --hold-out-ood, 1 query per seed, 8 in flight.)
SCALE=data/remixer-scale
if [[ " $STEPS " == *" remix "* ]]; then
  REMIX=(--queries-per-seed 3 --annotator-logits --logit-calibration query --keep-candidates 10
    --llm-max-tokens 96 --llm-top-p 0.9 --miner minilm-l6 --round-trip 10 --round-trip-retriever bm25
    --chunk-size 16 --llm-concurrency 16)
  "$PY/reasonembed-train" synthesize --seeds offline --output "$SCALE/champ" "${REMIX[@]}"
  "$PY/reasonembed-train" synthesize --seeds wordnet --hold-out-ood --max-seeds "${WORDNET_SEEDS:-200}" \
    --output "$SCALE/wordnet" "${REMIX[@]}"
fi

# ---- reasonembed-minilm-l6: LoRA on all-MiniLM-L6-v2; settings chosen by `scripts/sweep_minilm.py cv` (five folds,
# one CHAMP category held out each), then refit on the whole TRAIN side
MINILM=reasonembed_rag/trained_models/reasonembed-minilm-l6
MINILM_OOD=reasonembed_rag/trained_models/reasonembed-minilm-l6-ood   # the same recipe and seed without the validation
MINILM_RESULTS=$MINILM/results
MINILM_ALPHA=${MINILM_ALPHA:-0.75}   # WiSE-FT weight chosen by the cross-validation (0 = backbone, 1 = as trained)
MINILM_COMMON=(--model minilm-l6 --lora --lora-rank 16 --lora-alpha 32 --lr 3e-4
  --warmup-ratio 0.1 --epochs 2 --batch-size 8 --group-size 4 --query-max-length 128 --passage-max-length 128
  --reasoning-query-max-length 256 --temperature 0.05 --redapter-warmup-steps 2 --mask-false-negatives
  --query-format '{query}' --seed 42 --adapter-dtype float16 --sub-batch-size 16 --overwrite)
if [[ " $STEPS " == *" minilm "* ]]; then
  mkdir -p outputs
  OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" train "${MINILM_COMMON[@]}" --data "$REFIT_DATA" --loss redapter \
    --output "$MINILM" --name reasonembed-minilm-l6 > outputs/train-minilm-redapter.log 2>&1 &
  redapter=$!
  OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" train "${MINILM_COMMON[@]}" --data "$REFIT_DATA" --loss infonce \
    --output outputs/reasonembed-basic-minilm-l6 --name reasonembed-basic-minilm-l6 > outputs/train-minilm-infonce.log 2>&1 &
  infonce=$!
  # What scores the recipe on the validation (the demo's VALIDATION_STAND_INS): trained without its problems.
  OMP_NUM_THREADS=$THREADS "$PY/reasonembed-train" train "${MINILM_COMMON[@]}" --data "$MINILM_DATA" --loss redapter \
    --output "$MINILM_OOD" --name reasonembed-minilm-l6-ood > outputs/train-minilm-ood.log 2>&1 &
  ood=$!
  wait "$redapter" && wait "$infonce" && wait "$ood"
  for folder in "$MINILM" outputs/reasonembed-basic-minilm-l6 "$MINILM_OOD"; do
    "$PY/reasonembed-train" wise-ft "$folder" --alpha "$MINILM_ALPHA"
  done
fi
REFIT_NOTE="champ_concepts_ood is the out-of-domain validation, but reasonembed-minilm-l6 and \
reasonembed-basic-minilm-l6 were refit on the whole TRAIN side, its 42 problems included: their numbers there are not \
out of domain. reasonembed-minilm-l6-ood (the same recipe and seed without them) gives the recipe's out-of-domain \
number; the settings were chosen by leave-one-category-out cross-validation (training/README.md)."
if [[ " $STEPS " == *" minilm-eval "* ]]; then
  mkdir -p "$MINILM_RESULTS" "$MINILM_OOD/results"
  for model in reasonembed-minilm-l6 reasonembed-minilm-l6-ood outputs/reasonembed-basic-minilm-l6 minilm-l6 bm25; do
    OMP_NUM_THREADS=2 "$PY/reasonembed-rag" bright --data offline --tasks champ_concepts,champ_concepts_ood \
      --model "$model" --output "$MINILM_RESULTS/$(basename "$model").json"
  done
  cp "$MINILM_RESULTS"/*.json "$MINILM_OOD/results/"
  "$PY/reasonembed-train" card "$MINILM_OOD" --results "$MINILM_OOD/results"/*.json --note "$REFIT_NOTE"
  "$PY/reasonembed-train" card "$MINILM" --results "$MINILM_RESULTS"/*.json --note "$REFIT_NOTE"
fi
