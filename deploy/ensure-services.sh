#!/usr/bin/env bash
# Make sure the services triage needs are running on this machine: start each one if it is
# installed, install it from Debian's packages if it is not, and wait until it answers.
#   bash deploy/ensure-services.sh [rabbitmq] [postgres] [prometheus]   (default: all three)
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_updated=0
install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_port() {  # name port seconds
  local name=$1 port=$2 limit=$3 waited=0
  until answers "$port"; do
    if [ "$waited" -ge "$limit" ]; then log "$name did not answer on port $port"; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
  log "$name answers on port $port"
}

ensure_rabbitmq() {
  if answers 5672; then log "RabbitMQ answers on port 5672"; return; fi
  command -v rabbitmq-server >/dev/null || install rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_port RabbitMQ 5672 120
  rabbitmqctl await_startup >/dev/null 2>&1 || true
}

ensure_postgres() {
  if answers 5432; then log "PostgreSQL answers on port 5432"; return; fi
  command -v pg_ctlcluster >/dev/null || install postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    # the tests connect as postgres over loopback with trust auth, as on the project's machines
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port PostgreSQL 5432 60
}

ensure_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    log "promtool and prometheus are installed"; return
  fi
  install prometheus
  # Debian's package may start a server of its own; the tests start theirs on other ports.
  pkill -x prometheus 2>/dev/null || true
}

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(rabbitmq postgres prometheus)
for service in "${services[@]}"; do "ensure_$service"; done
