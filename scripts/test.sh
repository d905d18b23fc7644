#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: makes sure the services the tests need are running
# (installing them from Debian's packages if missing), then runs every test of the workspace.
#
# Services: Mosquitto on 127.0.0.1:1883 (the external-broker test). Everything else the tests use is
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

ensure_mosquitto
exec cargo test --workspace --locked "$@"
