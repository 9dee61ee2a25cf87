#!/usr/bin/env bash
# Rewards learned from data on rewardlab/ManipPush-v0 frames, on EfficientNet-Lite0 (ImageNet
# weights, frozen), judged by eval-reward on episodes none of them saw, next to the env's dense
# reward and a random reward (eval-reward's references) and random-encoder controls.
# Run from the repository root: bash experiments/manipulation-push-learned.sh
set -euo pipefail
export MUJOCO_GL="${MUJOCO_GL:-egl}"
R=experiments/results/manipulation-push-learned
ENV=rewardlab/ManipPush-v0
run() { echo "+ $*"; "$@"; }
# Demonstrations: 10 scripted-expert episodes (seeds 0-9).
run rewardlab learn-reward --env $ENV --from demos --method perceptual --n-demos 10 \
  --demo-steps 4 --features 32 --no-judge --out $R/perceptual
run rewardlab learn-reward --env $ENV --from demos --method goal --n-demos 10 \
  --no-judge --out $R/goal
# Labelled episodes: 8 per kind (seeds from 0), progress and success of every frame.
run rewardlab learn-reward --env $ENV --from labels --inputs frames --episodes 8 \
  --no-judge --out $R/progress_head
run rewardlab learn-reward --env $ENV --from labels --inputs frames --episodes 8 \
  --encoder efficientnet_lite0:random --dataset $R/progress_head/dataset --no-judge \
  --out $R/progress_head_random_encoder
# Judged together on 20 episodes per kind from seed 10000 (other layouts).
learned() { echo "{name: $1, model: {kind: learned, path: $2}}"; }
run rewardlab eval-reward --env $ENV --frames --episodes 20 --seed 10000 \
  --reward "$(learned perceptual $R/perceptual/checkpoint.pt)" \
  --reward "$(learned perceptual_random_encoder $R/perceptual/control/checkpoint.pt)" \
  --reward "$(learned goal_embedding $R/goal/checkpoint.pt)" \
  --reward "$(learned goal_embedding_random_encoder $R/goal/control/checkpoint.pt)" \
  --reward "$(learned progress_head $R/progress_head/checkpoint.pt)" \
  --reward "$(learned progress_head_random_encoder $R/progress_head_random_encoder/checkpoint.pt)" \
  --reward progress --reward sparse --out $R/eval
