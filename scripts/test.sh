#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: makes sure the services the tests need are running
# (installing them from Debian's packages if missing), then runs every test of the workspace.
#
# Services: Mosquitto on 127.0.0.1:1883 (the external-broker test) and PostgreSQL on 127.0.0.1:5432
# with trust authentication for local TCP connections (the store's conformance suite creates a fresh
# database per test; CITYOPS_TEST_POSTGRES_URL names another server). Everything else the tests use is
# embedded (rumqttd, SQLite) or started by the tests themselves on port 0.
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  for _ in $(seq 1 50); do
    if port_open "$1"; then return 0; fi
    sleep 0.2
  done
  echo "error: nothing listens on 127.0.0.1:$1 after starting $2" >&2
  return 1
}

ensure_mosquitto() {
  if port_open 1883; then return 0; fi
  if ! command -v mosquitto >/dev/null 2>&1; then
    echo "installing mosquitto (Debian package)..."
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
  fi
  echo "starting mosquitto on 127.0.0.1:1883..."
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  wait_for_port 1883 mosquitto
}

ensure_postgres() {
  if [ -n "${CITYOPS_TEST_POSTGRES_URL:-}" ] || port_open 5432; then return 0; fi
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing postgresql (Debian package)..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    # The tests connect as postgres over TCP without a password: trust local TCP connections only.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      $SUDO sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  echo "starting postgresql on 127.0.0.1:5432..."
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_for_port 5432 postgresql
}

ensure_mosquitto
ensure_postgres
exec cargo test --workspace --locked "$@"
