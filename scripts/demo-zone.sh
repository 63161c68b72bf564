#!/usr/bin/env bash
# A local three-server OneHA zone on 127.0.0.1, bootstrapped exactly as the
# OpenNebula HA guide says (solo start, server-add itself, restart with
# SERVER_ID = 0, then add the other servers one at a time).
#
#   scripts/demo-zone.sh start    build, bootstrap (or restart) the zone, show it
#   scripts/demo-zone.sh start --mysql   the same on MySQL: a database and user per server
#   scripts/demo-zone.sh status   onezone show 0
#   scripts/demo-zone.sh federation   two federated 3-server zones: master zone 0 (ports
#                                 2633-2653) and slave zone 100 (2663-2683), set up with
#                                 OpenNebula's federation procedure; stop and clean stop both
#   scripts/demo-zone.sh stop     SIGTERM every server of the demo
#   scripts/demo-zone.sh clean    stop, then delete the demo directory
#
# With --mysql (only when the zone is bootstrapped; a restart keeps the backend), the demo runs its
# own mariadbd with its data in <demo>/mariadb on port ONEHA_MYSQL_PORT (default 3307); stop and
# clean stop it too. With ONEHA_TEST_MYSQL=host:port (a server with a root user without password,
# as .ci/run starts) it makes the databases there instead, and clean drops them.
#
# Environment: ONEHA_DEMO_DIR (default <repo>/demo), ONEHA_PORT0/1/2 (default
# 2633, 2643, 2653), ONEHA_DEMO_TIMEOUT (seconds per step, default 60),
# ONEHA_NO_BUILD=1 to use already built binaries, ONEHA_BIN_DIR to take them from another
# directory than target/release (e.g. target/debug).
# ONEHA_TLS_DIR: TLS on (https endpoints, oned.conf TLS section) with ca.crt and
# server-N.crt / server-N.key from that directory; made there with openssl if absent.
# ONEHA_EXTRA_CONF: lines appended to every server's oned.conf (tests' faster periods).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${ONEHA_DEMO_DIR:-$ROOT/demo}"
PORTS=("${ONEHA_PORT0:-2633}" "${ONEHA_PORT1:-2643}" "${ONEHA_PORT2:-2653}")
TIMEOUT="${ONEHA_DEMO_TIMEOUT:-60}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${ONEHA_BIN_DIR:-$TARGET/release}"
ONED="$BIN/oned"
ONEZONE="$BIN/onezone"
ONEDB="$BIN/onedb"
# The zone being set up: OpenNebula's FEDERATION attributes (the `federation` command sets them).
FED_MODE="STANDALONE"
FED_ZONE=0
FED_MASTER=""

MYSQL_ENV="$DEMO/mysql.env"
MYSQL_DIR="$DEMO/mariadb"
MYSQL_HOST=""
MYSQL_PORT=""
MYSQL_PRIVATE=""

say() { printf '=== %s\n' "$*" >&2; }
die() { printf 'demo-zone: %s\n' "$*" >&2; exit 1; }

server_dir() { printf '%s/server-%s' "$DEMO" "$1"; }
TLS="${ONEHA_TLS_DIR:-}"
scheme() { if [[ -n "$TLS" ]]; then printf https; else printf http; fi; }
endpoint() { printf '%s://127.0.0.1:%s/RPC2' "$(scheme)" "${PORTS[$1]}"; }
# The onezone calls trust the demo CA.
if [[ -n "$TLS" ]]; then export ONE_CA_FILE="$TLS/ca.crt"; fi

# A CA and a certificate per server (127.0.0.1, localhost; server and client use), if absent.
make_certs() {
  [[ -n "$TLS" ]] || return 0
  mkdir -p "$TLS"
  [[ -f "$TLS/ca.crt" ]] && return 0
  command -v openssl >/dev/null || die "ONEHA_TLS_DIR needs openssl to make the demo certificates"
  say "make a demo CA and server certificates in $TLS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=OneHA demo CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" >"$TLS/server.ext"
  local i
  for i in 0 1 2; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=server-$i" \
      -keyout "$TLS/server-$i.key" -out "$TLS/server-$i.csr" 2>/dev/null
    openssl x509 -req -in "$TLS/server-$i.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
      -CAcreateserial -days 30 -extfile "$TLS/server.ext" -out "$TLS/server-$i.crt" 2>/dev/null
  done
  chmod 600 "$TLS"/*.key
}

build() {
  if [[ -n "${ONEHA_NO_BUILD:-}" && -x "$ONED" && -x "$ONEZONE" ]]; then
    return
  fi
  say "cargo build --release -p oned -p cli"
  (cd "$ROOT" && cargo build --release -p oned -p cli)
  [[ -x "$ONED" && -x "$ONEZONE" ]] || die "no $ONED or $ONEZONE after the build"
}

# The onezone calls of the guide run against server 0 with its credentials.
use_server0() {
  export ONE_AUTH="$(server_dir 0)/var/.one/one_auth"
  export ONE_XMLRPC="$(endpoint 0)"
}

# The first of the named programs on PATH or in an sbin directory (mariadbd lives in /usr/sbin).
find_program() { # <name...>
  local name dir
  for name in "$@"; do
    command -v "$name" 2>/dev/null && return 0
    for dir in /usr/sbin /usr/local/sbin /sbin; do
      [[ -x "$dir/$name" ]] && { printf '%s\n' "$dir/$name"; return 0; }
    done
  done
  return 1
}

mysql_root() { # <sql>: as root without password, over TCP
  "$(find_program mariadb mysql)" --no-defaults --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
    -uroot --batch --skip-column-names --connect-timeout=5 -e "$1"
}

# Loads the demo's MySQL settings, if it runs on MySQL.
load_mysql() {
  if [[ -f "$MYSQL_ENV" ]]; then
    # shellcheck source=/dev/null
    source "$MYSQL_ENV"
  fi
}

# Chooses the server of a new MySQL demo: ONEHA_TEST_MYSQL, else a private mariadbd.
init_mysql() {
  if [[ -n "${ONEHA_TEST_MYSQL:-}" ]]; then
    MYSQL_HOST="${ONEHA_TEST_MYSQL%:*}" MYSQL_PORT="${ONEHA_TEST_MYSQL##*:}" MYSQL_PRIVATE=""
  else
    MYSQL_HOST=127.0.0.1 MYSQL_PORT="${ONEHA_MYSQL_PORT:-3307}" MYSQL_PRIVATE=1
  fi
  printf 'MYSQL_HOST=%q MYSQL_PORT=%q MYSQL_PRIVATE=%q\n' "$MYSQL_HOST" "$MYSQL_PORT" "$MYSQL_PRIVATE" >"$MYSQL_ENV"
}

mariadb_pid() { cat "$MYSQL_DIR/demo.pid" 2>/dev/null || true; }

mariadb_running() {
  local pid
  pid="$(mariadb_pid)"
  [[ -n "$pid" ]] && alive "$pid"
}

# A socket path must fit in 108 bytes.
mariadb_socket() {
  local sock="$MYSQL_DIR/mysql.sock"
  ((${#sock} < 100)) || sock="${TMPDIR:-/tmp}/oneha-demo-mariadb-$MYSQL_PORT.sock"
  printf '%s' "$sock"
}

start_mariadb() { # the private mariadbd, if the demo has one; waits until it answers
  [[ -n "$MYSQL_PRIVATE" ]] || return 0
  if mariadb_running; then
    say "mariadbd already running (pid $(mariadb_pid))"
    return
  fi
  local mariadbd install root=() pid
  mariadbd="$(find_program mariadbd mysqld)" || die "--mysql needs mariadbd (apt-get install mariadb-server mariadb-client)"
  install="$(find_program mariadb-install-db mysql_install_db)" || die "--mysql needs mariadb-install-db"
  find_program mariadb mysql >/dev/null || die "--mysql needs the mariadb client"
  # mariadbd refuses to run as root unless told to.
  [[ "$(id -u)" != 0 ]] || root=(--user=root)
  local common=(--no-defaults --datadir="$MYSQL_DIR/data" --tmpdir="$MYSQL_DIR/tmp"
    --innodb-log-file-size=16M --innodb-buffer-pool-size=64M --skip-log-bin "${root[@]}")
  mkdir -p "$MYSQL_DIR/tmp"
  if [[ ! -d "$MYSQL_DIR/data" ]]; then
    say "mariadb-install-db in $MYSQL_DIR/data"
    "$install" "${common[@]}" --auth-root-authentication-method=normal --skip-test-db \
      >"$MYSQL_DIR/install.log" 2>&1 || { tail -n 20 "$MYSQL_DIR/install.log" >&2; die "mariadb-install-db failed"; }
  fi
  port_busy "$MYSQL_PORT" && die "port $MYSQL_PORT is already in use (set ONEHA_MYSQL_PORT)"
  say "start mariadbd on port $MYSQL_PORT"
  nohup "$mariadbd" "${common[@]}" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
    --socket="$(mariadb_socket)" --pid-file="$MYSQL_DIR/mariadbd.pid" \
    --log-error="$MYSQL_DIR/error.log" --skip-name-resolve </dev/null >>"$MYSQL_DIR/stdout" 2>&1 &
  pid=$!
  echo "$pid" >"$MYSQL_DIR/demo.pid"
  local deadline=$((SECONDS + TIMEOUT))
  until mysql_root "SELECT 1" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      say "mariadbd exited; $MYSQL_DIR/error.log:"
      tail -n 20 "$MYSQL_DIR/error.log" >&2
      exit 1
    fi
    ((SECONDS < deadline)) || die "mariadbd did not answer on port $MYSQL_PORT within ${TIMEOUT}s"
    sleep 0.2
  done
}

stop_mariadb() {
  [[ -n "$MYSQL_PRIVATE" ]] || return 0
  local pid
  pid="$(mariadb_pid)"
  [[ -n "$pid" ]] || return 0
  if alive "$pid"; then
    say "stop mariadbd (SIGTERM pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    while alive "$pid"; do
      ((SECONDS < deadline)) || die "mariadbd (pid $pid) did not exit within ${TIMEOUT}s of SIGTERM"
      sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$MYSQL_DIR/demo.pid"
}

# Creates server <index>'s database and user once; their names in <server>/mysql.db.
create_db() { # <index>
  local dir name user password suffix=""
  dir="$(server_dir "$1")"
  [[ -f "$dir/mysql.db" ]] && return 0
  # On a server shared with others (CI), names must not collide with other demos'.
  [[ -n "$MYSQL_PRIVATE" ]] || suffix="_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  name="opennebula_$1$suffix" user="oneadmin_$1$suffix"
  password="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  say "server $1: MySQL database $name, user $user"
  mysql_root "CREATE DATABASE $name CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
    CREATE USER '$user'@'127.0.0.1' IDENTIFIED BY '$password';
    CREATE USER '$user'@'localhost' IDENTIFIED BY '$password';
    GRANT ALL PRIVILEGES ON $name.* TO '$user'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON $name.* TO '$user'@'localhost';"
  printf '%s %s %s\n' "$name" "$user" "$password" >"$dir/mysql.db"
}

# Drops the databases and users of the demo on a server it does not own.
drop_dbs() {
  [[ -n "$MYSQL_HOST" && -z "$MYSQL_PRIVATE" ]] || return 0
  local f name user _
  for f in "$DEMO"/server-*/mysql.db; do
    [[ -f "$f" ]] || continue
    read -r name user _ <"$f"
    say "drop MySQL database $name and user $user"
    mysql_root "DROP DATABASE IF EXISTS $name; DROP USER IF EXISTS '$user'@'127.0.0.1', '$user'@'localhost';" ||
      say "could not drop $name on $MYSQL_HOST:$MYSQL_PORT"
  done
}

db_line() { # <index>
  if [[ -z "$MYSQL_HOST" ]]; then
    printf 'DB = [ BACKEND = "sqlite" ]'
    return
  fi
  local name user password
  create_db "$1"
  read -r name user password <"$(server_dir "$1")/mysql.db"
  printf 'DB = [ BACKEND = "mysql", SERVER = "%s", PORT = %s, USER = "%s", PASSWD = "%s", DB_NAME = "%s", CONNECTIONS = 8 ]' \
    "$MYSQL_HOST" "$MYSQL_PORT" "$user" "$password" "$name"
}

write_conf() { # <index> <server id>
  local dir db
  dir="$(server_dir "$1")"
  mkdir -p "$dir/etc"
  db="$(db_line "$1")"
  cat >"$dir/etc/oned.conf" <<EOF
# OneHA demo server $1
PORT = ${PORTS[$1]}
LISTEN_ADDRESS = "127.0.0.1"
$db
FEDERATION = [ MODE = "$FED_MODE", ZONE_ID = $FED_ZONE, SERVER_ID = $2, MASTER_ONED = "$FED_MASTER" ]
RAFT = [ LIMIT_PURGE = 100000, LOG_RETENTION = 250000, LOG_PURGE_TIMEOUT = 60,
         ELECTION_TIMEOUT_MS = 1000, BROADCAST_TIMEOUT_MS = 100, XMLRPC_TIMEOUT_MS = 500 ]
EOF
  if [[ -n "$TLS" ]]; then
    cat >>"$dir/etc/oned.conf" <<EOF
TLS = [ CERT_FILE = "$TLS/server-$1.crt", KEY_FILE = "$TLS/server-$1.key", CA_FILE = "$TLS/ca.crt" ]
EOF
  fi
  if [[ -n "${ONEHA_EXTRA_CONF:-}" ]]; then
    printf '%s\n' "$ONEHA_EXTRA_CONF" >>"$dir/etc/oned.conf"
  fi
}

# A live (not zombie) process.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null || true)"
  [[ "${stat##*) }" != Z* ]]
}

pid_of() { cat "$(server_dir "$1")/oned.pid" 2>/dev/null || true; }

running() { # <index>
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && alive "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Polls "$@" until it succeeds; fails after $TIMEOUT seconds.
wait_for() { # <description> <command...>
  local what="$1" deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "timed out after ${TIMEOUT}s waiting until $what"
      for d in "$DEMO"/server-*; do
        [[ -f "$d/var/oned.log" ]] && { say "tail of $d/var/oned.log"; tail -n 20 "$d/var/oned.log" >&2; }
      done
      exit 1
    fi
    sleep 0.2
  done
}

start_oned() { # <index>; waits until its /RPC2 answers
  local i="$1" dir pid
  dir="$(server_dir "$i")"
  if running "$i"; then
    say "server $i already running (pid $(pid_of "$i"))"
    return
  fi
  port_busy "${PORTS[$i]}" && die "port ${PORTS[$i]} is already in use (set ONEHA_PORT$i)"
  say "start server $i on port ${PORTS[$i]}"
  ONE_LOCATION="$dir" nohup "$ONED" -f </dev/null >>"$dir/stdout" 2>>"$dir/stderr" &
  pid=$!
  echo "$pid" >"$dir/oned.pid"
  local deadline=$((SECONDS + TIMEOUT))
  until [[ -s "$dir/var/.one/one_auth" ]] &&
    "$ONEZONE" list --endpoint "$(endpoint "$i")" \
      --user oneadmin --password "$(cut -d: -f2- <"$dir/var/.one/one_auth" | head -n1)" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      say "server $i exited; stderr:"
      tail -n 20 "$dir/stderr" >&2
      exit 1
    fi
    ((SECONDS < deadline)) || die "server $i did not answer on $(endpoint "$i") within ${TIMEOUT}s"
    sleep 0.2
  done
}

stop_oned() { # <index>
  local i="$1" pid
  pid="$(pid_of "$i")"
  [[ -n "$pid" ]] || return 0
  if alive "$pid"; then
    say "stop server $i (SIGTERM pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    while alive "$pid"; do
      ((SECONDS < deadline)) || die "server $i (pid $pid) did not exit within ${TIMEOUT}s of SIGTERM"
      sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$(server_dir "$i")/oned.pid"
}

# Column <n> of server <id>'s row in the HA table of `onezone show <zone>`.
ha_field() { # <id> <column>
  "$ONEZONE" show "$FED_ZONE" | awk -v id="$1" -v col="$2" '
    /^HA & FEDERATION SYNC STATUS$/ { table = 1; getline; next }
    table && NF == 0 { table = 0 }
    table && $1 == id { print $col }'
}

has_state() { [[ "$(ha_field "$1" 3)" == "$2" ]]; }

has_leader() {
  "$ONEZONE" show "$FED_ZONE" | awk '/^HA & FEDERATION/ {t=1; getline; next} t && NF==0 {t=0} t && $3=="leader" {found=1} END {exit !found}'
}

# Server <id> follows and its INDEX reached the leader's COMMIT.
caught_up() { # <id>
  local show leader_commit state index
  show="$("$ONEZONE" show "$FED_ZONE")" || return 1
  leader_commit="$(awk '/^HA & FEDERATION/ {t=1; getline; next} t && NF==0 {t=0} t && $3=="leader" {print $6}' <<<"$show")"
  read -r state index < <(awk -v id="$1" '/^HA & FEDERATION/ {t=1; getline; next} t && NF==0 {t=0} t && $1==id {print $3, $5}' <<<"$show")
  [[ "$state" == follower && -n "$leader_commit" && "$index" =~ ^[0-9]+$ && "$index" -ge "$leader_commit" ]]
}

bootstrap() {
  mkdir -p "$DEMO"
  make_certs
  say "server 0: start solo (SERVER_ID = -1)"
  write_conf 0 -1
  start_oned 0
  grow
}

# The guide's HA steps from a running solo server 0: server-add itself, restart as SERVER_ID =
# 0, then add servers 1 and 2.
grow() {
  use_server0
  say "onezone server-add $FED_ZONE --name server-0 --rpc $(endpoint 0)"
  "$ONEZONE" server-add "$FED_ZONE" --name server-0 --rpc "$(endpoint 0)"
  wait_for "server 0 is solo" has_state 0 solo
  "$ONEZONE" show "$FED_ZONE"

  say "server 0: stop, set SERVER_ID = 0, start"
  stop_oned 0
  write_conf 0 0
  start_oned 0
  wait_for "server 0 is the leader" has_state 0 leader
  "$ONEZONE" show "$FED_ZONE"

  for i in 1 2; do
    say "server $i: copy server 0's var/.one, SERVER_ID = $i"
    mkdir -p "$(server_dir "$i")/var"
    rm -rf "$(server_dir "$i")/var/.one"
    cp -a "$(server_dir 0)/var/.one" "$(server_dir "$i")/var/"
    write_conf "$i" "$i"
    say "onezone server-add $FED_ZONE --name server-$i --rpc $(endpoint "$i")"
    "$ONEZONE" server-add "$FED_ZONE" --name "server-$i" --rpc "$(endpoint "$i")"
    [[ "$(ha_field "$i" 3)" == error ]] && say "server $i is in the error state until it starts, as in the guide"
    start_oned "$i"
    wait_for "server $i follows and has caught up" caught_up "$i"
  done
  touch "$DEMO/.bootstrapped"
}

cmd_start() { # [--mysql]
  local mysql=""
  while (($#)); do
    case "$1" in
      --mysql) mysql=1 ;;
      *) die "start: unknown option $1" ;;
    esac
    shift
  done
  build
  if [[ -f "$DEMO/.bootstrapped" ]]; then
    [[ -z "$mysql" || -f "$MYSQL_ENV" ]] || die "$DEMO runs on SQLite; run '$0 clean' before '$0 start --mysql'"
    say "restart the zone in $DEMO"
    load_mysql
    start_mariadb
    for i in 0 1 2; do
      [[ -f "$(server_dir "$i")/etc/oned.conf" ]] && start_oned "$i"
    done
    use_server0
    wait_for "the zone has a leader" has_leader
  elif [[ -e "$DEMO" ]]; then
    die "$DEMO exists but was not fully bootstrapped; run '$0 clean' first"
  else
    mkdir -p "$DEMO"
    if [[ -n "$mysql" ]]; then
      init_mysql
      start_mariadb
    fi
    bootstrap
  fi
  say "onezone show 0"
  "$ONEZONE" show 0
  say "the zone is up; ONE_AUTH=$ONE_AUTH ONE_XMLRPC=$ONE_XMLRPC"
}

cmd_status() {
  [[ -d "$DEMO" ]] || die "no demo in $DEMO; run '$0 start'"
  [[ -x "$ONEZONE" ]] || die "no $ONEZONE; run '$0 start'"
  for i in 0 1 2; do
    if running "$i"; then
      say "server $i: running, pid $(pid_of "$i"), $(endpoint "$i")"
    else
      say "server $i: not running"
    fi
  done
  load_mysql
  if [[ -n "$MYSQL_PRIVATE" ]]; then
    if mariadb_running; then
      say "mariadbd: running, pid $(mariadb_pid), port $MYSQL_PORT"
    else
      say "mariadbd: not running"
    fi
  elif [[ -n "$MYSQL_HOST" ]]; then
    say "MySQL: $MYSQL_HOST:$MYSQL_PORT"
  fi
  use_server0
  for i in 0 1 2; do
    if running "$i" && "$ONEZONE" show 0 --endpoint "$(endpoint "$i")"; then
      return 0
    fi
  done
  die "no server answers"
}

cmd_stop() {
  if [[ -f "$DEMO/.federation" ]]; then
    (as_zone master && cmd_stop)
    (as_zone slave && cmd_stop)
    return
  fi
  for i in 0 1 2; do
    stop_oned "$i"
  done
  load_mysql
  stop_mariadb
}

# Makes the federation demo's master or slave zone the current one (run it in a subshell).
as_zone() { # master|slave
  local root="$DEMO"
  case "$1" in
    master)
      DEMO="$root/master"
      PORTS=("${ONEHA_PORT0:-2633}" "${ONEHA_PORT1:-2643}" "${ONEHA_PORT2:-2653}")
      FED_MODE="MASTER" FED_ZONE=0 FED_MASTER=""
      ;;
    slave)
      DEMO="$root/slave"
      PORTS=("${ONEHA_PORT3:-2663}" "${ONEHA_PORT4:-2673}" "${ONEHA_PORT5:-2683}")
      FED_MODE="SLAVE" FED_ZONE=100
      FED_MASTER="$(scheme)://127.0.0.1:${ONEHA_PORT0:-2633}/RPC2"
      ;;
  esac
}

# OpenNebula's federation procedure on loopback: a 3-server master zone, `onezone create` of the
# slave zone there, `onedb backup --federated`; the slave's first server restored from it with
# the master's one_auth, started in SLAVE mode, then grown to 3 servers with the guide's steps.
cmd_federation() {
  [[ -z "$TLS" ]] || die "federation: the master reaches the slave zone over http only"
  [[ -e "$DEMO" ]] && die "$DEMO exists; run '$0 clean' first"
  build
  [[ -x "$ONEDB" ]] || die "no $ONEDB after the build"
  mkdir -p "$DEMO"
  touch "$DEMO/.federation"
  local backup="$DEMO/one.db_federated.bck" slave_endpoint
  slave_endpoint="$(as_zone slave && endpoint 0)"
  (
    as_zone master
    say "master zone 0: bootstrap 3 servers with MODE = MASTER"
    bootstrap
    printf 'NAME = "slave"\nENDPOINT = "%s"\n' "$slave_endpoint" >"$DEMO/slave.tmpl"
    say "master: onezone create slave.tmpl (ENDPOINT $slave_endpoint)"
    "$ONEZONE" create "$DEMO/slave.tmpl"
    say "master: onedb backup --federated"
    "$ONEDB" backup --federated -s "$(server_dir 0)/var/one.db" "$backup"
  )
  (
    as_zone slave
    mkdir -p "$DEMO"
    say "slave zone 100: first start of server 0 (makes its database), then stop it"
    write_conf 0 -1
    start_oned 0
    stop_oned 0
    say "slave: onedb restore --federated, the master's one_auth, start in SLAVE mode"
    "$ONEDB" restore --federated -s "$(server_dir 0)/var/one.db" "$backup"
    cp "$DEMO/../master/server-0/var/.one/one_auth" "$(server_dir 0)/var/.one/one_auth"
    start_oned 0
    say "slave: the guide's HA steps, each server change made at the master"
    grow
    touch "$DEMO/.bootstrapped"
    say "slave: onezone list"
    "$ONEZONE" list
    say "slave: onezone show 100"
    "$ONEZONE" show 100
  )
  say "two federated zones are up: master ONE_XMLRPC=$(endpoint 0), slave ONE_XMLRPC=$slave_endpoint"
}

case "${1:-}" in
  start)
    shift
    cmd_start "$@"
    ;;
  status) cmd_status ;;
  federation) cmd_federation ;;
  stop) cmd_stop ;;
  clean)
    cmd_stop
    drop_dbs
    rm -rf "$DEMO"
    ;;
  *)
    echo "usage: $0 start [--mysql]|status|federation|stop|clean" >&2
    exit 2
    ;;
esac
