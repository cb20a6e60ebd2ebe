#!/usr/bin/env bash
# Set up the virtualenv that holds the real RocketMQ C++ client (PyPI rocketmq==0.4.4,
# a ctypes wrapper around a bundled librocketmq.so) and print its python's path.
#
#   PY=$(bash tests/compat/setup_clients.sh)     # stdout: the venv's python, nothing else
#
# Idempotent: a venv that already imports rocketmq.client at 0.4.4 is reused without
# touching the network; a broken or half-made one is rebuilt.
#
# Environment:
#   ROCKETPY_COMPAT_VENV    venv directory (default .venv-compat-cpp; a relative path is
#                           taken from the repository root)
#   ROCKETPY_COMPAT_PYTHON  interpreter to build it from (default python3)
#
# System needs (checked on Debian 12, Python 3.11): the wheel is manylinux1 x86_64 and
# bundles its own libz; librocketmq.so also links libstdc++.so.6, libgcc_s.so.1 and glibc
# (libdl, libpthread, librt, libm, libc), which every Debian system has because apt itself
# depends on them. The one thing a fresh Debian may lack is the venv module's ensurepip
# (package python3-venv). Missing pieces are installed with apt-get only when absent, and
# the script says so on stderr. Exit codes: 0 ok, 2 unsupported platform, 3 setup failed,
# 4 pip could not install the wheel (registry unreachable).
set -euo pipefail

PACKAGE="rocketmq"
VERSION="0.4.4"

say() { echo "setup_clients: $*" >&2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${ROCKETPY_COMPAT_VENV:-.venv-compat-cpp}"
case "$venv" in
  /*) ;;
  *) venv="$repo_root/$venv" ;;
esac
base_python="${ROCKETPY_COMPAT_PYTHON:-python3}"
venv_python="$venv/bin/python"

if [ "$(uname -s)" != "Linux" ] || [ "$(uname -m)" != "x86_64" ]; then
  say "the $PACKAGE==$VERSION wheel is Linux x86_64 only; this is $(uname -s) $(uname -m)"
  exit 2
fi

venv_ok() {
  [ -x "$venv_python" ] || return 1
  "$venv_python" - "$VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
import rocketmq.client  # loads librocketmq.so
assert version("rocketmq") == sys.argv[1]
EOF
}

apt_install() {
  # apt_install PACKAGE...: install Debian packages, only as root and only with apt-get.
  if ! command -v apt-get >/dev/null 2>&1; then
    say "need Debian package(s) $* but apt-get is not available; install them and rerun"
    exit 3
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
      say "need Debian package(s) $* and am not root; install them and rerun"
      exit 3
    fi
  fi
  say "installing missing Debian package(s): $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_venv_module() {
  if "$base_python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    return
  fi
  local minor
  minor="$("$base_python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  say "$base_python ($minor) has no ensurepip, so 'python3 -m venv' would fail"
  apt_install "python${minor}-venv"
}

ensure_system_libs() {
  # ldd names every shared library the bundled .so cannot find.
  local so missing pkgs=()
  so="$("$venv_python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("rocketmq").origin), "librocketmq.so"))')"
  missing="$(ldd "$so" 2>/dev/null | awk '/not found/ {print $1}')"
  [ -z "$missing" ] && return
  for lib in $missing; do
    case "$lib" in
      libstdc++.so.6) pkgs+=(libstdc++6) ;;
      libgcc_s.so.1) pkgs+=(libgcc-s1) ;;
      libz.so.1) pkgs+=(zlib1g) ;;
      *) say "librocketmq.so needs $lib, which no known Debian package here provides"; exit 3 ;;
    esac
  done
  say "librocketmq.so cannot find: $missing"
  apt_install "${pkgs[@]}"
}

mkdir -p "$(dirname "$venv")"
# Two runs at once (parallel test workers) must not build the same venv together.
lock="${TMPDIR:-/tmp}/rocketpy-compat-$(printf '%s' "$venv" | md5sum | cut -c1-16).lock"
exec 9>"$lock"
flock -w 600 9 || { say "timed out waiting for the lock $lock"; exit 3; }

if venv_ok; then
  echo "$venv_python"
  exit 0
fi

ensure_venv_module
if [ -e "$venv" ]; then
  say "rebuilding $venv (it does not import $PACKAGE==$VERSION)"
  rm -rf "$venv"
fi
say "creating $venv from $base_python and installing $PACKAGE==$VERSION"
"$base_python" -m venv "$venv" >&2
if ! "$venv_python" -m pip install --quiet --disable-pip-version-check "$PACKAGE==$VERSION" >&2; then
  say "pip could not install $PACKAGE==$VERSION (is the package registry reachable?)"
  rm -rf "$venv"
  exit 4
fi
ensure_system_libs
if ! venv_ok; then
  say "$PACKAGE==$VERSION installed but 'import rocketmq.client' fails:"
  "$venv_python" -c 'import rocketmq.client' >&2 || true
  exit 3
fi
echo "$venv_python"
