# Shared by the README's two commands: installs the Debian packages tracejit needs when they are
# missing, then configures and builds into build/ (or $TRACEJIT_BUILD_DIR).
set -euo pipefail

# libopenmpi-dev and openmpi-bin: tj::distributed and its mpirun tests; graphviz and
# librsvg2-bin: the dumps' SVG pictures and the tests that render DOT and the demo's plot.
TRACEJIT_PACKAGES=(cmake ninja-build g++ llvm-19-dev zlib1g-dev libzstd-dev libabsl-dev
                   libgtest-dev libgmock-dev libbenchmark-dev libopenmpi-dev openmpi-bin
                   graphviz librsvg2-bin)

tracejit_install_packages() {
  local missing=()
  for p in "${TRACEJIT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "tracejit: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Configures and builds; sets TRACEJIT_BUILD to the build directory.
tracejit_build() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  TRACEJIT_BUILD="${TRACEJIT_BUILD_DIR:-$root/build}"
  cmake -S "$root" -B "$TRACEJIT_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
  cmake --build "$TRACEJIT_BUILD" -j "$(nproc)"
}
