#!/bin/bash
# MariaDB alone on a lossy disk: DDL and inserts, a power cut at a random moment, restart,
# then every table is read. Counts the cuts after which a table's .frm is left without its
# InnoDB data (ERROR 1932) or mariadbd refuses to start. docs/fault-testing.md ("MariaDB on a
# lossy disk") explains what it shows.
#
#   scripts/mariadb-power-cut.sh [TRIALS] [--journaled|--lying|--strict]
#
# As root, with /dev/fuse, mariadbd and mariadb-install-db. Works in /tmp/oneha-mariadb-cut.
set -u
TRIALS=${1:-30}
MODE=${2:---journaled}
[ "$MODE" = --strict ] && MODE=""
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=/tmp/oneha-mariadb-cut
M=$W/mnt
PORT=13399

cargo build -q --manifest-path "$ROOT/Cargo.toml" -p lossyfs --example lossy-mount || exit 1
MOUNT_BIN=$(cargo metadata -q --format-version 1 --manifest-path "$ROOT/Cargo.toml" \
  | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/debug/examples/lossy-mount

umount -l "$M" 2>/dev/null
rm -rf "$W"
mkdir -p "$M" "$W/tmp" "$W/run"
mkfifo "$W/commands"
$MOUNT_BIN $MODE "$M" < "$W/commands" > "$W/mount.log" 2>&1 &
MOUNT_PID=$!
exec 7> "$W/commands"
cleanup() {
  [ -n "${DB_PID:-}" ] && kill -9 "$DB_PID" 2>/dev/null
  [ -n "${LOAD_PID:-}" ] && kill "$LOAD_PID" 2>/dev/null
  exec 7>&-
  wait "$MOUNT_PID" 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 50); do mountpoint -q "$M" && break; sleep 0.1; done

COMMON=(--no-defaults "--datadir=$M/data" "--tmpdir=$W/tmp" --innodb-log-file-size=16M
  --innodb-buffer-pool-size=32M --skip-log-bin --innodb-flush-method=fsync
  --innodb-use-native-aio=0 --user=root)
mariadb-install-db "${COMMON[@]}" --auth-root-authentication-method=normal --skip-test-db \
  > "$W/install.log" 2>&1 || { echo "mariadb-install-db failed: $W/install.log"; exit 1; }
echo sync >&7

sql() { mariadb -S "$W/run/sock" -uroot -N "$@"; }

start() {
  : > "$W/error.log"
  mariadbd "${COMMON[@]}" "--socket=$W/run/sock" "--port=$PORT" --bind-address=127.0.0.1 \
    "--log-error=$W/error.log" --skip-name-resolve &
  DB_PID=$!
  for _ in $(seq 600); do
    sql -e 'SELECT 1' > /dev/null 2>&1 && return 0
    kill -0 "$DB_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# What OneHA's restore does: drop and create tables, fill them; and a database dropped.
load() {
  local n=0
  while true; do
    n=$((n + 1))
    {
      echo "CREATE DATABASE IF NOT EXISTS t$((n % 3)); USE t$((n % 3));"
      for k in 1 2 3 4 5; do echo "DROP TABLE IF EXISTS x$k;"; done
      for k in 1 2 3 4 5; do
        echo "CREATE TABLE x$k (id INT PRIMARY KEY, body MEDIUMTEXT) ENGINE=InnoDB;"
        echo "INSERT INTO x$k VALUES (1, REPEAT('a', 5000)), (2, 'b');"
      done
      echo "DROP DATABASE IF EXISTS t$(((n + 1) % 3));"
    } | sql > /dev/null 2>&1
  done
}

orphans=0
refused=0
for trial in $(seq "$TRIALS"); do
  if ! start; then
    refused=$((refused + 1))
    echo "cut $((trial - 1)): mariadbd refused to start:"
    grep '\[ERROR\]' "$W/error.log" | head -3
    cp "$W/error.log" "$W/refused-$trial.log"
    break
  fi
  for db in $(sql -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 't_'"); do
    for tb in $(sql -e "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db'"); do
      if ! out=$(sql -e "SELECT COUNT(*) FROM $db.$tb" 2>&1); then
        orphans=$((orphans + 1))
        echo "cut $((trial - 1)): $db.$tb: $(echo "$out" | grep ERROR)"
        # What an operator does: the table's data is gone; drop what is left of it.
        sql -e "DROP TABLE IF EXISTS $db.$tb" > /dev/null 2>&1
      fi
    done
  done
  load &
  LOAD_PID=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 3 }')"
  kill -9 "$DB_PID"
  wait "$DB_PID" 2>/dev/null
  kill "$LOAD_PID"
  wait "$LOAD_PID" 2>/dev/null
  LOAD_PID=
  echo cut >&7
done
echo "$TRIALS trials: $orphans tables left without their InnoDB data, mariadbd refused to start $refused times"
