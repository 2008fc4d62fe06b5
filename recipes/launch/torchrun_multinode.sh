#!/usr/bin/env bash
# Multi-node training with torchrun: run this same script once on EVERY node.
#
#   NNODES=4 NODE_RANK=<0..3> MASTER_ADDR=<node 0's hostname> \
#     recipes/launch/torchrun_multinode.sh recipes/musicot/base.yaml [extra CLI overrides...]
#
# torchrun starts one process per GPU and sets RANK / LOCAL_RANK / WORLD_SIZE; Lightning reads
# them (TorchElasticEnvironment), so the recipe only needs trainer.num_nodes to match.
# Re-running the same command after a crash or preemption resumes from the last checkpoint,
# including the mid-epoch position of the streamed data.
set -euo pipefail

RECIPE=${1:?usage: torchrun_multinode.sh RECIPE.yaml [overrides...]}
shift
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi --list-gpus 2>/dev/null | wc -l)}
MASTER_ADDR=${MASTER_ADDR:-localhost}
MASTER_PORT=${MASTER_PORT:-29500}
# Resume only when a last checkpoint exists (the first launch starts from scratch).
RUN_DIR=${RUN_DIR:-$(python - "$RECIPE" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
print(cfg.get("trainer", {}).get("default_root_dir", "runs"))
PY
)}
RESUME=()
if compgen -G "$RUN_DIR/checkpoints/last*.ckpt" > /dev/null; then RESUME=(--ckpt_path last); fi

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

# --no-python: torchrun starts the `musigen` console script itself (`-m musigen.training fit`,
# the same LightningCLI as a module, also works where the script is not on PATH).
exec torchrun \
  --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  --no-python musigen train fit --config "$RECIPE" \
  --trainer.num_nodes "$NNODES" --trainer.devices "$GPUS_PER_NODE" \
  "${RESUME[@]}" "$@"
