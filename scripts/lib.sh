# Shared by scripts/demo, scripts/invoke and scripts/test; sourced from the project root, not run.
# Build output goes where cargo puts it by default (./target), so the README's own cargo
# commands reuse it; set CARGO_TARGET_DIR to keep it elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BOOTSTRAP="$CARGO_TARGET_DIR/release/bootstrap"   # the Lambda function
CLI="$CARGO_TARGET_DIR/release/ecr-retag"         # the command line

build_release() { # the release binaries (bootstrap and ecr-retag), showing cargo's progress
  echo "==> Building the function and the command line: cargo build --release (the first build takes several minutes and needs crates.io)"
  cargo build --locked --release
}

_started=()
stop_started() {
  for pid in "${_started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_started[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "${_work:-}"
}

# Starts the local ECR emulator, seeded with the repositories and images the events/ samples
# name, unless AWS_ENDPOINT_URL already names one (then that is used as it is). Exports
# AWS_ENDPOINT_URL, AWS_REGION and local credentials. The caller traps stop_started on EXIT.
local_ecr() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    echo "==> Using the ECR at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    return 0
  fi
  _work=$(mktemp -d)
  echo "==> Starting the local ECR emulator (tests/emulator/strict_ecr.py)"
  .venv/bin/python tests/emulator/strict_ecr.py --port 0 > "$_work/emulator.port" 2> "$_work/emulator.log" &
  _started+=($!)
  local deadline=$((SECONDS + 30))
  until [ -s "$_work/emulator.port" ]; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "${_started[-1]}" 2>/dev/null; then
      echo "the emulator did not start:" >&2; cat "$_work/emulator.log" >&2; return 1
    fi
    sleep 0.2
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$(head -n1 "$_work/emulator.port")"
  export AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
  echo "    $AWS_ENDPOINT_URL; pushing the sample images the events/ samples name"
  .venv/bin/python scripts/local_registry.py seed
  # The event queue beside it (moto's SQS), where a fan-out sends its sweeps.
  SWEEP_QUEUE_URL=$(.venv/bin/python scripts/local_registry.py queue)
}
