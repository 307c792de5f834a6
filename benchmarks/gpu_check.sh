#!/usr/bin/env bash
# One prepared GPU check (at most 8 minutes; no network needed). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
#
# Every measure prints one `RESULT {...}` line as soon as it is done, so a run cut short still reports
# what it finished. Each stage has its own time cap (seconds, override with the variables below); the caps
# add up to 460 s. Stages:
#   1. the card (nvidia-smi, torch)                                                    RESULT measure=card
#   2. the GPU-only tests (pytest -m gpu on the files that carry the marker)           RESULT measure=gpu_tests
#   3. training step of full_150s in bf16, 150 s crop, every block checkpointed,
#      MFU from 5 steps after 2 warm-up steps                                         RESULT measure=train_step/train_mfu
#   4. peak memory of a LoRA step at 150 s (adapters on lm_attn, lm_mlp, dit_attn, rank 16, frozen base
#      in bf16, full checkpointing, AdamW) against the memory plan's estimate for the same settings
#      (python -m songbloom.plan, when that module exists in this checkout)          RESULT measure=train_memory/plan
#   5. generate.py RTF for full_150s in bf16 at batch 1 and 4 (8 patches after 2 warm-up patches)
#                                                                                     RESULT measure=generate
# Targets (not blocking): MFU >= 40 %, RTF <= 0.2 at batch 1.
set -u
PY=${PYTHON:-python}
T_TESTS=${T_TESTS:-110}
T_TRAIN=${T_TRAIN:-100}
T_LORA=${T_LORA:-80}
T_PLAN=${T_PLAN:-40}
T_GEN=${T_GEN:-110}
PLAN_OVERRIDES=${PLAN_OVERRIDES:-"experiment=japanese_lora lora.base_dtype=bf16"}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    sed -n '2,22p' "$0"
    exit 0
fi

stage() {  # stage NAME CAP CMD...: run with a time cap; a failure or timeout is reported, never fatal
    local name=$1 cap=$2
    shift 2
    echo "=== $name (cap ${cap}s): $*"
    local t0=$SECONDS
    timeout --signal=INT --kill-after=10 "$cap" bash -c '"$@"' "$name" "$@"
    local rc=$?
    echo "RESULT {\"measure\": \"stage\", \"stage\": \"$name\", \"rc\": $rc, \"timed_out\": $([[ $rc == 124 || $rc == 137 ]] && echo true || echo false), \"seconds\": $((SECONDS - t0))}"
}

card() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" - <<'PY'
import json, torch
ok = torch.cuda.is_available()
print("RESULT " + json.dumps({"measure": "card", "cuda": ok, "torch": torch.__version__,
      "name": torch.cuda.get_device_name() if ok else None,
      "memory_GiB": torch.cuda.get_device_properties(0).total_memory / 2**30 if ok else None}))
PY
}

gpu_tests() {
    local files
    files=$(grep -rlE "pytest\.mark\.gpu|mark\.gpu" tests --include='*.py' | sort)
    # shellcheck disable=SC2086
    "$PY" -m pytest -q -p no:cacheprovider -m gpu $files
    local rc=$?
    echo "RESULT {\"measure\": \"gpu_tests\", \"rc\": $rc, \"files\": \"$(echo $files)\"}"
}

plan() {
    if "$PY" -c "import songbloom.plan" 2>/dev/null; then
        # shellcheck disable=SC2086
        local out
        out=$(mktemp)
        "$PY" -m songbloom.plan $PLAN_OVERRIDES --seconds 150 --json > "$out" \
            && "$PY" -c "import json; p = json.load(open('$out')); print('RESULT ' + json.dumps({'measure': 'plan', 'overrides': '$PLAN_OVERRIDES', 'total_GiB': p['total_bytes'] / 2**30, 'settings': p['settings']}))"
    else
        echo "plan not available"
        echo 'RESULT {"measure": "plan", "status": "plan not available"}'
    fi
}

export PY PLAN_OVERRIDES
export -f card gpu_tests plan
stage card 20 card
stage gpu_tests "$T_TESTS" gpu_tests
stage train_step "$T_TRAIN" "$PY" benchmarks/train_step.py --device cuda --dtype bfloat16 --preset full_150s \
    --frames 3744 --checkpointing full --reps 5 --warmup 2 --mfu
stage lora_memory "$T_LORA" "$PY" benchmarks/train_loop.py --device cuda --memory --memory-modes lora \
    --memory-frames 3750
stage plan "$T_PLAN" plan
stage generate "$T_GEN" "$PY" benchmarks/generate.py --preset full_150s --device cuda --dtype bfloat16 \
    --batch 1 4 --patches 10 --warmup-patches 2 --no-floor
echo "gpu_check done in ${SECONDS}s"
