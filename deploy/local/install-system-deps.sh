#!/usr/bin/env bash
# Installs the operating-system packages CityScreen runs on, only when missing (idempotent).
# Usage: install-system-deps.sh [run|test]   (test also installs chromium for the browser tests and
# faketime for the shifted-clock run)
# Needs apt-get (Debian/Ubuntu) for anything missing; elsewhere it names what to install and stops.
set -euo pipefail
want=("redis-server:redis-server" "mvn:maven" "java:openjdk-17-jre-headless")
missing=()
if [ "${1:-run}" = "test" ]; then
  want+=("chromium:chromium" "faketime:faketime")  # faketime: the tests run again on a shifted clock
  # the compose file is validated by `docker compose config` (no engine needed); Debian ships v1 only
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=("docker-compose")
fi
for pair in "${want[@]}"; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
for tool in node npm python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: '$tool' not found: install it (Debian: apt-get install nodejs npm python3-venv; node 20+)" >&2
    exit 2
  }
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing ${missing[*]} and no apt-get: install them with your package manager" >&2
    exit 2
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Java is checked after installing: an old JDK first on PATH still breaks the broker.
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1])}')
if [ "${java_major:-0}" -lt 17 ]; then
  echo "error: Java 17+ needed, found ${java_major:-none}: install openjdk-17-jre-headless or set JAVA_HOME / PATH to a JDK 17+" >&2
  exit 2
fi
