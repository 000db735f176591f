#!/usr/bin/env bash
# Installs what rootcertd needs on a fresh Debian 12 machine: to build, run
# the demo and package (no option), to run every test (--test), to measure
# client libraries (--clients). Idempotent: a second run installs nothing.
set -euo pipefail

# The demo, the build and the package: what scripts/demo needs on a fresh
# Debian 12 (scripts/fresh-install proves it in a minimal chroot).
packages=(
  # build (build-essential: dpkg-buildpackage checks for it by name)
  build-essential g++ cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libspdlog-dev libyaml-cpp-dev libssl-dev libc-ares-dev libgtest-dev
  # real peers for the demo and the integration tests
  nginx-light postgresql postgresql-client openssl curl jq ca-certificates
  python3 procps util-linux
  # packaging and the service unit's checks
  debhelper lintian fakeroot dpkg-dev systemd python3-yaml groff-base man-db
)

for profile in "$@"; do
  case "$profile" in
    # scripts/test: everything the test suites and the fuzzers use
    --test) packages+=(
      python3-pytest
      # the sidecar image: built with podman import, run by podman (runc)
      podman runc
      prometheus  # for promtool, which checks the /metrics exposition format
      # bench/fleet: the server's own keep-alive limit; valgrind for the leak check
      wrk valgrind
      # outputs: the consumers that read one CA file or a truststore
      pgbouncer libpostgresql-jdbc-java default-jre-headless
      # a real HTTP CONNECT proxy for the proxy tests
      tinyproxy
      # libFuzzer targets
      clang libclang-rt-14-dev
      # scripts/fresh-install: the demo in a minimal bookworm chroot
      debootstrap) ;;
    # bench/clients: the client libraries docs/clients.md measures.
    --clients)
      packages+=(python3-psycopg2 python3-asyncpg libpostgresql-jdbc-java default-jdk-headless
                 golang-go golang-github-jackc-pgx-v4-dev)
      command -v npm >/dev/null || packages+=(npm) ;;  # a machine's own Node.js keeps its npm
    *) echo "deps: unknown option $profile (use --test, --clients)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
# The packages start nginx and a PostgreSQL cluster on default ports; the
# tests start their own instances on free ports, so the stock ones stay off.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now nginx postgresql prometheus tinyproxy >/dev/null 2>&1 || true
fi
