#!/usr/bin/env bash
# The feedback-pathway experiments (docs/results.md, "Feedback pathways and REINFORCE"):
# Fashion-MNIST 10k subset, 3 epochs, the dense and conv-short nets, 3 seeds; BrainProp and EBP
# with each feedback pathway (symmetric, fa, learned, dfa), and the REINFORCE baseline (with
# symmetric feedback: it is a different rule, not a pathway). One sweep directory per pathway,
# then one report over all of them.
#
# usage: scripts/feedback-experiments.sh OUT_DIR [extra sweep options, e.g. --jobs 2 --threads 1]
# Rerun it after an interruption: finished runs are skipped, unfinished ones resume.
set -euo pipefail
out=${1:?usage: scripts/feedback-experiments.sh OUT_DIR [sweep options]}
shift
brainprop=${BRAINPROP:-"$(dirname "$0")/../build/host/brainprop"}
common=(--data fashion-mnist --models dense,conv-short --seeds 3 --epochs 3 --train-limit 10000 --no-progress)
for feedback in symmetric fa learned dfa; do
  extra=()
  # Kolen-Pollack's decay: B - W shrinks by 1 - 2 lr decay = 0.998 per step (x 0.66 in 3 epochs).
  [[ $feedback == learned ]] && extra=(--feedback-decay 0.01)
  "$brainprop" sweep "${common[@]}" --rules brainprop,ebp --feedback "$feedback" "${extra[@]}" \
    --out "$out/$feedback" "$@"
done
"$brainprop" sweep "${common[@]}" --rules reinforce --out "$out/reinforce" "$@"
"$brainprop" report "$out"/symmetric "$out"/fa "$out"/learned "$out"/dfa "$out"/reinforce --out "$out/report"
