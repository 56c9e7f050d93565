#!/usr/bin/env bash
# Installs what building Tern needs on a fresh Debian machine: a C toolchain,
# libclang (bindgen for the rocksdb crate) and the system RocksDB library the
# build links against (see .cargo/config.toml). Safe to run again.
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi
