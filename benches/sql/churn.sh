#!/usr/bin/env bash
# Churn without vacuum: the claim rate minute by minute, with the hot set
# (every migration) and without it (the flat layout: every migration but
# `hot_chunks`), one after the other on the same machine. Each layout gets
# a schema of its own with 100,000 queued jobs, autovacuum off on its table,
# and 2 pgbench clients running benches/sql/churn.sql.
#
#   bash benches/sql/churn.sh [seconds with the hot set] [seconds flat]
#
# Defaults: 1800 and 600. Needs psql and pgbench (postgresql-client) and the
# database of PGDATABASE (default `test`) on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
migrations="$here/../../postgres/migrations"
db=${PGDATABASE:-test}
psql=(psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -d "$db")

run() { # layout seconds
    local layout=$1 seconds=$2 schema=churn_$1 script
    script=$(mktemp)
    trap 'rm -f "$script"' RETURN
    "${psql[@]}" -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema"
    for f in "$migrations"/*.sql; do
        if [[ $layout == flat && $f == *_hot_chunks.sql ]]; then continue; fi
        { echo "SET search_path TO $schema;"; cat "$f"; } | "${psql[@]}" > /dev/null
    done
    "${psql[@]}" -c "ALTER TABLE $schema.jobs SET (autovacuum_enabled = off)" \
        -c "INSERT INTO $schema.jobs (queue, payload) SELECT 'c', int8send(g) FROM generate_series(1, 100000) g" \
        -c "ANALYZE $schema.jobs"
    sed "s/churn\./$schema./g" "$here/churn.sql" > "$script"
    echo "== $layout: $seconds s of churn, no vacuum"
    pgbench -h 127.0.0.1 -n -f "$script" -D hot=$([[ $layout == hot ]] && echo 1 || echo 0) \
        -c 2 -j 2 -T "$seconds" -P 60 "$db" 2>&1 \
        | awk -v layout="$layout" '/^progress:/ { tps[++n] = $4; print }
            END { if (n) printf "== %s: first minute %.0f tps, last minute %.0f tps: %.0f %%\n",
                                layout, tps[1], tps[n], 100 * tps[n] / tps[1] }'
    "${psql[@]}" -c "DROP SCHEMA $schema CASCADE"
}

run hot "${1:-1800}"
run flat "${2:-600}"
