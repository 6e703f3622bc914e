#!/usr/bin/env bash
# A throw-away ClickHouse server for tests and benchmarks: Debian 12's packaged
# clickhouse-server (18.16), started as a child process on 127.0.0.1 with its own
# data directory and free ports. It never touches /etc/clickhouse-server, the
# system's data directory or a systemd-managed instance.
#
#   scripts/clickhouse-server.sh install          install Debian's package if missing (nothing started)
#   scripts/clickhouse-server.sh start [--fresh]  install if missing, start (or reuse), print the URL
#   scripts/clickhouse-server.sh stop             SIGTERM, wait; data is kept for the next start
#   scripts/clickhouse-server.sh kill             SIGKILL (crash test); data is kept
#   scripts/clickhouse-server.sh url              http://127.0.0.1:PORT
#   scripts/clickhouse-server.sh https-url        https://localhost:PORT (self-signed, see ca-file)
#   scripts/clickhouse-server.sh ca-file          the PEM file that signs the https certificate
#   scripts/clickhouse-server.sh env              export lines for the tests (MAILTLS_TEST_CLICKHOUSE_*)
#   scripts/clickhouse-server.sh status           running or stopped, exit code 0 or 1
#   scripts/clickhouse-server.sh destroy          stop and delete the directory
#
# The directory is $MAILTLS_CLICKHOUSE_DIR (default /tmp/mailtls-clickhouse-$UID); ports are
# chosen once (free at that time) and kept there, so a stop/start keeps the same URL.
# Users: `default` (no password, 127.0.0.1 only) and `mailtls` (password in DIR/password),
# which the tests use to check credentials and the wrong-password error.
set -euo pipefail

DIR="${MAILTLS_CLICKHOUSE_DIR:-${TMPDIR:-/tmp}/mailtls-clickhouse-$(id -u)}"
SERVER_BIN="${MAILTLS_CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}"
TEST_USER="mailtls"
TEST_PASSWORD="mailtls-test-password"

die() { echo "clickhouse-server.sh: $*" >&2; exit 1; }

install_server() {
  [ -x "$SERVER_BIN" ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "clickhouse-server.sh: installing Debian's clickhouse-server" >&2
  # policy-rc.d keeps the package's init script from starting the system instance.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  [ "$created_policy" -eq 1 ] && $sudo rm -f "$policy"
  [ -x "$SERVER_BIN" ] || die "clickhouse-server was not installed at $SERVER_BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

is_running() {
  [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null
}

port() { sed -n "s/^$1=//p" "$DIR/ports"; }

write_config() {
  mkdir -p "$DIR"/{data,tmp,user_files,log,format_schemas}
  if [ ! -f "$DIR/ports" ]; then
    local http tcp https
    http=$(free_port); tcp=$(free_port); https=$(free_port)
    while [ "$tcp" = "$http" ]; do tcp=$(free_port); done
    while [ "$https" = "$http" ] || [ "$https" = "$tcp" ]; do https=$(free_port); done
    printf 'http=%s\ntcp=%s\nhttps=%s\n' "$http" "$tcp" "$https" >"$DIR/ports"
  fi
  if [ ! -f "$DIR/server.crt" ]; then
    # A CA and a server certificate for "localhost" and 127.0.0.1, for the https test.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mailtls test CA" \
      -keyout "$DIR/ca.key" -out "$DIR/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$DIR/server.key" -out "$DIR/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      >"$DIR/server.ext"
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
      -CAcreateserial -days 3650 -extfile "$DIR/server.ext" -out "$DIR/server.crt" >/dev/null 2>&1
  fi
  printf '%s\n' "$TEST_PASSWORD" >"$DIR/password"
  local http tcp https
  http=$(port http); tcp=$(port tcp); https=$(port https)
  cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$DIR/log/clickhouse-server.log</log>
        <errorlog>$DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <https_port>$https</https_port>
    <openSSL>
        <server>
            <certificateFile>$DIR/server.crt</certificateFile>
            <privateKeyFile>$DIR/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <!-- One shard on this very server: lets the tests exercise the cluster-mode
             Distributed tables without a second server. -->
        <mailtls_test_cluster>
            <shard>
                <replica>
                    <host>127.0.0.1</host>
                    <port>$tcp</port>
                </replica>
            </shard>
        </mailtls_test_cluster>
    </remote_servers>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
  cat >"$DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <$TEST_USER>
            <password>$TEST_PASSWORD</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </$TEST_USER>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

url() { echo "http://127.0.0.1:$(port http)"; }

start() {
  if [ "${1:-}" = "--fresh" ]; then
    stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
  fi
  install_server
  if is_running; then
    url
    return 0
  fi
  write_config
  # setsid: own process group, so the caller's Ctrl-C does not kill it half-way.
  setsid "$SERVER_BIN" --config-file="$DIR/config.xml" >"$DIR/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$DIR/pid"
  local u i
  u=$(url)
  for i in $(seq 1 600); do
    if curl -sf "$u/?query=SELECT%201" >/dev/null 2>&1; then
      echo "$u"
      return 0
    fi
    if ! is_running; then
      tail -20 "$DIR/log/clickhouse-server.err.log" >&2 2>/dev/null || true
      tail -20 "$DIR/log/stdout.log" >&2 2>/dev/null || true
      die "server exited during start-up (logs in $DIR/log)"
    fi
    sleep 0.1
  done
  die "server did not answer SELECT 1 within 60 s (logs in $DIR/log)"
}

stop() {
  is_running || { rm -f "$DIR/pid"; return 0; }
  local pid i
  pid=$(cat "$DIR/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/pid"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/pid"
}

case "${1:-}" in
  install) install_server ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  kill)
    if is_running; then kill -KILL "$(cat "$DIR/pid")"; sleep 0.2; fi
    rm -f "$DIR/pid"
    ;;
  url) [ -f "$DIR/ports" ] || die "not set up: run start first"; url ;;
  https-url) [ -f "$DIR/ports" ] || die "not set up: run start first"; echo "https://localhost:$(port https)" ;;
  ca-file) echo "$DIR/ca.crt" ;;
  env)
    [ -f "$DIR/ports" ] || die "not set up: run start first"
    echo "export MAILTLS_TEST_CLICKHOUSE_URL=$(url)"
    echo "export MAILTLS_TEST_CLICKHOUSE_HTTPS_URL=https://localhost:$(port https)"
    echo "export MAILTLS_TEST_CLICKHOUSE_CA_FILE=$DIR/ca.crt"
    echo "export MAILTLS_TEST_CLICKHOUSE_USER=$TEST_USER"
    echo "export MAILTLS_TEST_CLICKHOUSE_PASSWORD=$TEST_PASSWORD"
    echo "export MAILTLS_TEST_CLICKHOUSE_CLUSTER=mailtls_test_cluster"
    echo "export MAILTLS_TEST_CLICKHOUSE_CTL=$(cd "$(dirname "$0")" && pwd)/clickhouse-server.sh"
    ;;
  status) if is_running; then echo "running: $(url)"; else echo "stopped"; exit 1; fi ;;
  destroy) stop; rm -rf "$DIR" ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
