#!/usr/bin/env bash
# Installs the operating-system packages CityScreen runs on, only when missing (idempotent).
# Usage: install-system-deps.sh [run|test]   (test also installs chromium for the browser tests)
set -euo pipefail
want=("redis-server:redis-server")
[ "${1:-run}" = "test" ] && want+=("chromium:chromium")
missing=()
for pair in "${want[@]}"; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
for tool in java mvn node npm python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: '$tool' not found: install it (Debian: apt-get install openjdk-17-jre-headless maven nodejs npm python3-venv)" >&2
    exit 2
  }
done
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]}')
if [ "${java_major:-0}" -lt 17 ]; then
  echo "error: Java 17+ needed, found ${java_major}: install openjdk-17-jre-headless or put a JDK 17 first on PATH" >&2
  exit 2
fi
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
