# Shared helpers for scripts/*.sh: start a throwaway `keyfold dev` on a free loopback port
# and stop it by PID. Source this file; it defines KEYFOLD_BIN, start_keyfold, stop_keyfold.

KEYFOLD_BIN=${KEYFOLD_BIN:-target/debug/keyfold}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_keyfold DATA_DIR → sets KF_PID, KF_URL, KF_PORT; waits until /healthz answers.
# KF_SIGNERS (default 3) signer processes; they load the public test-only fixture primes
# (KEYFOLD_INSECURE_TEST_PRIMES) instead of spending minutes generating their own.
start_keyfold() {
  local dir=$1
  KF_PORT=$(free_port)
  KF_URL="http://127.0.0.1:${KF_PORT}"
  KEYFOLD_INSECURE_TEST_PRIMES=${KEYFOLD_INSECURE_TEST_PRIMES-$PWD/crates/keyfold-mpc/tests/fixtures/primes.json} \
  RUST_LOG=${RUST_LOG:-warn} "$KEYFOLD_BIN" dev --data-dir "$dir" --listen "127.0.0.1:${KF_PORT}" \
    --signers "${KF_SIGNERS:-3}" >"$dir.stdout" 2>"$dir.stderr" &
  KF_PID=$!
  for _ in $(seq 1 200); do
    if curl -fsS "$KF_URL/healthz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$KF_PID" 2>/dev/null; then
      echo "keyfold dev exited early:" >&2
      cat "$dir.stderr" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "keyfold dev did not become ready" >&2
  return 1
}

stop_keyfold() {
  if [ -n "${KF_PID:-}" ] && kill -0 "$KF_PID" 2>/dev/null; then
    kill "$KF_PID" 2>/dev/null || true
    wait "$KF_PID" 2>/dev/null || true
  fi
  KF_PID=
}
