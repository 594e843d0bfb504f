#!/usr/bin/env bash
# What a 2-core machine cannot show, in one run on a machine with more cores (16 here, about 9 minutes):
#   1. worker scaling as a user runs it (separate `skein train` processes) at 1, 4, 8 and 16 workers:
#      sync (batch 64 per worker) and hogwild, samples/s and the fraction of linear (aim: ≥ 0.8 at 8);
#   2. the simulated executor against threads at P = 4, 8, 16 (mlp, and lenet's sync/hogwild/layerwise):
#      simulated seconds per epoch over threaded, with the cost table calibrated in the same run;
#   3. NATS between processes with cores to spare: the transport against raw loopback TCP and a
#      D = 2 pipeline across 2 processes against one (both bound by the cores on 2 of them).
# Each step has its own time limit, so one that overruns leaves the others' figures; logs go to $OUT
# (or ./many-cores-out).
#
#   bash bench/many-cores.sh                 # needs bun (npx bun) and, for step 3, nats-server
#   SCALING=1,2 WORKERS=2 bash bench/many-cores.sh     # the same steps at other counts (a dry run here)
set -u
out="${OUT:-many-cores-out}"
mkdir -p "$out"
bun=(npx --no-install bun)
command -v bun >/dev/null && bun=(bun)
cores=$(nproc)
echo "many-cores: $cores cores, $(uptime)" | tee "$out/summary.txt"

step() { # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$out/summary.txt"
  local started=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "   rc $rc after $((SECONDS - started)) s; tail:" | tee -a "$out/summary.txt"
  tail -n 25 "$out/$name.log" | tee -a "$out/summary.txt"
}

"${bun[@]}" asm/build.ts >"$out/build.log" 2>&1 || { echo "many-cores: kernel build failed (see $out/build.log)"; exit 1; }
step scaling 150 "${bun[@]}" bench/user-scaling.ts --scaling "${SCALING:-1,4,8,16}" --rounds 2
step simulated-mlp 180 "${bun[@]}" bench/simulated.bench.ts --workers "${WORKERS:-4,8,16}" --models mlp --algos sync,hogwild,layerwise,dmsgd --no-overhead --repeats 2
step simulated-lenet 120 "${bun[@]}" bench/simulated.bench.ts --workers "${WORKERS:-4,8}" --models lenet --algos sync,hogwild,layerwise --no-overhead --repeats 2
if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
  step nats 90 "${bun[@]}" bench/nats.bench.ts --only transport,pipeline --rounds 3
else
  echo "== nats: skipped (no nats-server; apt-get install nats-server)" | tee -a "$out/summary.txt"
fi
echo "many-cores: done at $(date -u +%H:%M:%S) UTC, $(uptime)" | tee -a "$out/summary.txt"
