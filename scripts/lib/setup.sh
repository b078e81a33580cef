# Shared by scripts/run and scripts/test: installs what is missing, skips what is there.
# Sourced, not run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# One stable build directory outside the clone, so a fresh clone (and CI) reuses earlier
# builds instead of compiling the world again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/social-sync/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '\n==> %s\n' "$*"; }

# ensure_packages PKG...: apt-get installs the Debian packages that are not installed yet.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust: the toolchain cannot be downloaded here; say how to get it if it is missing.
ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true
}

ensure_build_tools() {
  ensure_rust
  # gcc builds the bundled SQLite; pkg-config is asked for by -sys crates.
  ensure_packages build-essential pkg-config
}

# The desktop app's build needs WebKitGTK and friends (Tauri on Linux).
ensure_app_build_deps() {
  ensure_packages libwebkit2gtk-4.1-dev libsoup-3.0-dev libayatana-appindicator3-dev librsvg2-dev \
    libxdo-dev libssl-dev file
}

# Headless UI and desktop tests: Xvfb, a private D-Bus, WebKitWebDriver, Chromium for Playwright.
ensure_gui_test_deps() {
  ensure_packages xvfb xauth xdotool dbus dbus-x11 webkit2gtk-driver python3-dbus python3-gi chromium
}

# npm packages of ui/, installed (as the lock file pins them) when missing or out of date.
# (`npm ci` refuses this lock file over the CLI's optional per-platform packages.)
ensure_node_modules() {
  command -v npm >/dev/null || ensure_packages nodejs npm
  if [ ! -f "$ROOT/ui/node_modules/.package-lock.json" ] || [ "$ROOT/ui/package-lock.json" -nt "$ROOT/ui/node_modules/.package-lock.json" ]; then
    say "installing npm packages (ui/)"
    (cd "$ROOT/ui" && npm install --no-audit --no-fund)
  fi
}

# tauri-driver (WebDriver for Tauri apps), built from crates.io once.
ensure_tauri_driver() {
  if ! command -v tauri-driver >/dev/null; then
    say "installing tauri-driver"
    cargo install tauri-driver --locked --version '^2'
  fi
}

build_ui() {
  say "building the UI (ui/dist)"
  (cd "$ROOT/ui" && npm run build --silent)
}
