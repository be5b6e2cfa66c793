# shellcheck shell=bash
# Installs what switchyard's scripts need — only what is missing — and small helpers they
# share. Sourced by scripts/test.sh and scripts/demo.sh; not meant to be run by itself.
#
# Works as root (CI, containers) and as a normal user with sudo. Never prompts: apt-get
# runs with DEBIAN_FRONTEND=noninteractive and -y; `apt-get update` runs at most once.

# Prints a step heading.
sy_step() {
    if [ -t 1 ]; then
        printf '\n\033[1m==> %s\033[0m\n' "$*"
    else
        printf '\n==> %s\n' "$*"
    fi
    return 0
}

# Prints an error and exits.
sy_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

sy_is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Runs a command as root: directly when we are root, through sudo otherwise.
sy_as_root() {
    if sy_is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        sy_die "need root to run '$*': run as root or install sudo"
    fi
}

sy_dpkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

SY_APT_UPDATED=0

# Installs the given Debian packages that are not installed yet.
sy_apt_install() {
    local pkg missing=()
    for pkg in "$@"; do
        sy_dpkg_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "already installed: $*"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        sy_die "missing ${missing[*]} and there is no apt-get here: install them by hand"
    if [ "$SY_APT_UPDATED" -eq 0 ]; then
        sy_as_root apt-get update -q
        SY_APT_UPDATED=1
    fi
    echo "installing: ${missing[*]}"
    sy_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# The system packages the build and the tests need:
#   postgresql-15 + client  the throwaway upstream servers of the tests and the demo
#   clang, libclang-dev     bindgen, for the pg_query crate (PostgreSQL's own parser)
#   pkg-config              -sys crates
#   pgbouncer               comparison runs in tests and bench/
#   curl                    the demo asks the admin API
sy_ensure_system_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "not a Debian-like system: make sure PostgreSQL 15, clang, libclang and pkg-config are installed"
        return 0
    fi
    sy_apt_install ca-certificates pkg-config clang libclang-dev pgbouncer curl \
        postgresql-15 postgresql-client-15
}

# What the dashboard's browser test needs (the tests only, not the demo): headless Chromium,
# chromedriver to drive it over WebDriver, and a font for its screenshots.
sy_ensure_browser_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "not a Debian-like system: install Chromium and chromedriver (or set SWITCHYARD_CHROMIUM and SWITCHYARD_CHROMEDRIVER)"
        return 0
    fi
    sy_apt_install chromium chromium-driver fonts-dejavu-core
}

# cargo with rustfmt and clippy (from rustup), and cargo-nextest (from crates.io).
sy_ensure_rust_tools() {
    command -v cargo >/dev/null 2>&1 ||
        sy_die "cargo not found: install Rust with rustup (https://rustup.rs)"
    local component
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null 2>&1 ||
                sy_die "cargo ${component/rustfmt/fmt} is missing and there is no rustup to add it"
            rustup component add "$component"
        fi
    done
    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
    echo "cargo: $(cargo --version); nextest: $(cargo nextest --version 2>/dev/null | head -n 1)"
}

# The directory of PostgreSQL's server programs (initdb, pg_ctl, postgres, pgbench, psql):
# $PG_BINDIR, else `pg_config --bindir` if it has initdb, else Debian's PostgreSQL 15 path.
sy_pg_bindir() {
    local dir
    if [ -n "${PG_BINDIR:-}" ]; then
        echo "$PG_BINDIR"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    fi
    dir=/usr/lib/postgresql/15/bin
    [ -x "$dir/initdb" ] || sy_die "PostgreSQL server programs not found (no initdb in pg_config --bindir nor $dir)"
    echo "$dir"
}
