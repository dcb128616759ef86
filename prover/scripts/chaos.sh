#!/usr/bin/env bash
# Breaks a fleet of `pjp-prover run` workers on purpose, as an operator
# would, and reads the damage from the queue's own tables afterwards.
#
#   cargo build --release -p pjp-prover
#   bash prover/scripts/chaos.sh [experiment...]
#
# CHAOS_LOG_N sets the jobs' size (2^n coefficients, 4 polynomials per job).
# Experiments: kill-loop outage-5 outage-60 backend-kills shared-gc symlink
# redaction (all of them by default). Each uses its own schema in the
# `test` database and its own store folder, removed at the end.
#
# It STOPS AND STARTS the local PostgreSQL cluster (outage-*): never run it
# beside tests or anything else that uses the server. Needs root for
# pg_ctlcluster and `psql` on the PATH.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PROVER=${PJP_PROVER:-$TARGET/release/pjp-prover}
DB=${CHAOS_DATABASE_URL:-postgres://root@127.0.0.1:5432/test}
CLUSTER=$(ls /etc/postgresql)
WORK=$(mktemp -d /tmp/pjp-chaos.XXXXXX)
export PJP_GPU=cpu RUST_LOG=${RUST_LOG:-warn}

[ -x "$PROVER" ] || { echo "no $PROVER: cargo build --release -p pjp-prover" >&2; exit 2; }

cleanup() {
    [ -f "$WORK/pids" ] && while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$WORK/pids"
    pg_isready -q -h 127.0.0.1 || pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main start
    rm -rf "$WORK"
}
trap cleanup EXIT

sql() { PGOPTIONS='-c client_min_messages=warning' psql -X -qtA "$DB" -c "$1"; }
# one: a command's output on one line (JSON compacted), with its exit code.
one() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    python3 -c 'import json,sys
t=sys.stdin.read()
try: print(json.dumps(json.loads(t)), end="")
except ValueError: print(" / ".join(l for l in t.splitlines() if l.strip())[:400], end="")' <<<"$out"
    echo " (exit $rc)"
}
pg_stop() { pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main stop -m fast; }
pg_start() {
    pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main start
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 && return; sleep 0.1; done
    echo "PostgreSQL did not come back" >&2; exit 1
}
pjp() { local schema=$1; shift; PJP_SCHEMA=$schema DATABASE_URL=$DB "$PROVER" "$@"; }

# worker SCHEMA ID: starts a worker in the background (lease 2 s as in the
# original chaos run), its summary in $WORK/ID.json, its log in $WORK/ID.log.
worker() {
    local schema=$1 id=$2
    # exec: the PID printed is the worker's own, so a SIGKILL reaches it.
    (
        export PJP_SCHEMA=$schema DATABASE_URL=$DB
        exec "$PROVER" run --exit-when-empty --json --progress none --wait 120s \
            --worker-id "$id" --store-url "file://$WORK/store" --inline-limit 0 \
            --heartbeat 1s --lease-ttl 2s --rescue-interval 250ms --poll-interval 200ms \
            --witness-workers 1 --prover-workers 1 \
            >"$WORK/$id.json" 2>>"$WORK/$id.log"
    ) &
    echo $! >>"$WORK/pids"
    echo $!
}

# remaining SCHEMA: jobs not finished yet.
remaining() { sql "SELECT count(*) FROM $1.jobs WHERE status NOT IN ('succeeded','dead')"; }

# wait_done SCHEMA PID...: waits (at most 10 minutes) for the workers to exit.
wait_done() {
    local schema=$1; shift
    for _ in $(seq 3000); do
        local alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return
        sleep 0.2
    done
    echo "$schema: workers still running after 10 minutes" >&2; exit 1
}

# wait_for SCHEMA SQL-CONDITION: polls (at most 2 minutes).
wait_for() {
    for _ in $(seq 1200); do
        [ "$(sql "SELECT ($2) FROM $1.jobs LIMIT 1")" = t ] && return
        sleep 0.1
    done
    echo "$1: never $2" >&2; exit 1
}

# report SCHEMA: what the queue says happened, and the stored proofs checked.
report() {
    local schema=$1
    echo "  rows:      $(sql "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM $schema.jobs GROUP BY 1 ORDER BY 1) s")"
    echo "  charged:   $(sql "SELECT 'attempts ' || sum(attempts) || ', lost leases ' || sum(lost_leases) || ', infrastructure retries ' || sum(infra_retries) FROM $schema.jobs")"
    echo "  verify:    $(one pjp "$schema" verify --store-url "file://$WORK/store" --json)"
    for f in "$WORK"/*.json; do
        [ -s "$f" ] || continue
        echo "  $(basename "$f" .json): $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["ending"], "succeeded", s["succeeded"], "released", len(s["released"]), "fleet", s.get("fleet"))' "$f")"
    done
    rm -f "$WORK"/*.json
}

fresh() {
    sql "DROP SCHEMA IF EXISTS $1 CASCADE" >/dev/null
    pjp "$1" migrate >/dev/null
}

kill_loop() {
    local s=chaos_kill
    echo "== kill-loop: 3 workers, one SIGKILLed (and restarted) every 1.5 s until the queue is empty"
    fresh $s
    pjp $s enqueue --jobs 3000 --log-n ${CHAOS_LOG_N:-15} --batch 4 --progress none >/dev/null
    local pids=() kills=0
    for i in 1 2 3; do pids+=("$(worker $s w$i)"); done
    for round in $(seq 200); do
        sleep 1.5
        [ "$(remaining $s)" = 0 ] && break
        local i=$((round % 3))
        kill -9 "${pids[$i]}" 2>/dev/null && kills=$((kills + 1))
        pids[$i]=$(worker $s "w$((i + 1))-r$round")
    done
    wait_done $s "${pids[@]}"
    echo "  SIGKILLs:  $kills"
    report $s
    sql "DROP SCHEMA $s CASCADE" >/dev/null
}

outage() {
    local secs=$1 s=chaos_outage_$1
    echo "== outage-$secs: PostgreSQL stopped for $secs s under 3 workers (lease 2 s), proof trees"
    fresh $s
    pjp $s enqueue --batches 60 --circuits 20 --log-n ${CHAOS_LOG_N:-14} --batch 4 --progress none >/dev/null
    local pids=()
    for i in 1 2 3; do pids+=("$(worker $s w$i)"); done
    wait_for $s "count(*) FILTER (WHERE status = 'succeeded') > 200"
    echo "  at the stop: $(remaining $s) jobs not finished, $(sql "SELECT count(*) FROM $s.jobs WHERE status = 'running'") running"
    pg_stop
    sleep "$secs"
    pg_start
    wait_done $s "${pids[@]}"
    report $s
    sql "DROP SCHEMA $s CASCADE" >/dev/null
}

backend_kills() {
    local s=chaos_kills
    echo "== backend-kills: pg_terminate_backend on a worker connection 5 times a second, proof trees"
    fresh $s
    pjp $s enqueue --batches 60 --circuits 20 --log-n ${CHAOS_LOG_N:-15} --batch 4 --progress none >/dev/null
    local pids=() kills=0
    for i in 1 2 3; do pids+=("$(worker $s w$i)"); done
    for _ in $(seq 3000); do
        [ "$(remaining $s)" = 0 ] && break
        local n
        n=$(sql "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1) k" || echo 0)
        kills=$((kills + n))
        sleep 0.2
    done
    wait_done $s "${pids[@]}"
    echo "  backends terminated: $kills"
    report $s
    sql "DROP SCHEMA $s CASCADE" >/dev/null
}

shared_gc() {
    echo "== shared-gc: two queues (schemas) in one store; gc of one, then the other checked"
    for s in chaos_gc_a chaos_gc_b; do
        fresh $s
        pjp $s enqueue --jobs 50 --log-n 10 --batch 2 --progress none >/dev/null
        wait_done $s "$(worker $s "$s")"
        rm -f "$WORK"/*.json
    done
    # An upload no row names, old enough to collect: gc must take exactly it.
    local identity
    identity=$(sql "SELECT id FROM chaos_gc_a.queue_identity")
    mkdir -p "$WORK/store/chaos_gc_a/$identity/results/-/0"
    echo orphan >"$WORK/store/chaos_gc_a/$identity/results/-/0/999999-1"
    touch -d '2 hours ago' "$WORK/store/chaos_gc_a/$identity/results/-/0/999999-1"
    echo "  gc of a:   $(one pjp chaos_gc_a gc --store-url "file://$WORK/store" --older-than 1s --json)"
    echo "  b after:   $(one pjp chaos_gc_b verify --store-url "file://$WORK/store" --json)"
    # A blob of no identity beside a's: gc refuses unless told.
    echo stray >"$WORK/store/chaos_gc_a/stray"
    touch -d '2 hours ago' "$WORK/store/chaos_gc_a/stray"
    echo "  stray:     $(one pjp chaos_gc_a gc --store-url "file://$WORK/store" --older-than 1s)"
    echo "  stray kept: $([ -f "$WORK/store/chaos_gc_a/stray" ] && echo yes || echo NO)"
    for s in chaos_gc_a chaos_gc_b; do sql "DROP SCHEMA $s CASCADE" >/dev/null; done
}

symlink() {
    local s=chaos_link
    echo "== symlink: a link inside the store root pointing out of it; verify, purge and gc through it"
    fresh $s
    pjp $s enqueue --jobs 5 --log-n 10 --batch 2 --progress none >/dev/null
    wait_done $s "$(worker $s w1)"
    rm -f "$WORK"/*.json
    local identity outside=$WORK/outside
    identity=$(sql "SELECT id FROM $s.queue_identity")
    mkdir -p "$outside" && echo precious >"$outside/1-1"
    ln -s "$outside" "$WORK/store/$s/$identity/results/evil"
    # A row naming a blob through the link, as a corrupt or hostile row would.
    sql "UPDATE $s.jobs SET result_key = '$s/$identity/results/evil/1-1' WHERE id = 1" >/dev/null
    echo "  verify:    $(one pjp $s verify --store-url "file://$WORK/store" --json)"
    echo "  purge:     $(NO_COLOR=1 one pjp $s purge --older-than 0s --store-url "file://$WORK/store")"
    echo "  gc:        $(NO_COLOR=1 one pjp $s gc --store-url "file://$WORK/store" --older-than 0s)"
    echo "  outside file kept: $([ -f "$outside/1-1" ] && echo yes || echo NO)"
    sql "DROP SCHEMA $s CASCADE" >/dev/null
}

redaction() {
    echo "== redaction: database URLs carrying the password s3cr3t-pw, bad and good"
    local leaks=0 url out
    for url in \
        'postgres://root:s3cr3t-pw@127.0.0.1:99999/test' \
        'postgres://root:s3cr3t-pw@127.0.0.1:notaport/test' \
        'postgres://root:s3cr3t-pw@[::1:5432/test' \
        'postgres://root@127.0.0.1:1/test?password=s3cr3t-pw' \
        'postgres://root:s3cr3t-pw@127.0.0.1:1/test'; do
        for cmd in "run --wait 0s --progress none" "status" "migrate" "gc --store-url file://$WORK/store" "run --help" "status --help"; do
            # shellcheck disable=SC2086
            out=$(RUST_LOG=debug DATABASE_URL=$url PJP_STORE_URL="s3://k:s3cr3t-pw@bucket" "$PROVER" $cmd 2>&1 || true)
            if grep -q s3cr3t-pw <<<"$out"; then
                leaks=$((leaks + 1))
                echo "  LEAK: $cmd with $url: $(grep s3cr3t-pw <<<"$out" | head -1)"
            fi
        done
    done
    echo "  outputs with the password: $leaks of 30"
}

experiments=("$@")
[ ${#experiments[@]} -gt 0 ] || experiments=(kill-loop outage-5 outage-60 backend-kills shared-gc symlink redaction)
for e in "${experiments[@]}"; do
    case $e in
        kill-loop) kill_loop ;;
        outage-5) outage 5 ;;
        outage-60) outage 60 ;;
        backend-kills) backend_kills ;;
        shared-gc) shared_gc ;;
        symlink) symlink ;;
        redaction) redaction ;;
        *) echo "unknown experiment $e" >&2; exit 2 ;;
    esac
done
