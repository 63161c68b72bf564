#!/usr/bin/env bash
# The log-format upgrade test (crates/oned/tests/it/upgrade.rs): a zone of the previous log
# format, upgraded by a full restart, with one server left behind. It needs the oned of that
# release, built here from git history into a cache directory that outlives the clone.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The last release writing log format 0 (ARCHITECTURE.md, "Log format and upgrades").
old="a8976b718201d9c88b030d731cb17f49845d6c1d"
cache="${ONEHA_OLD_ONED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oneha/old-oned/$old}"
binary="$cache/target/debug/oned"

if [ ! -x "$binary" ]; then
  if ! git cat-file -e "$old^{commit}" 2>/dev/null; then
    echo "upgrade test skipped: commit $old is not in this checkout's history" >&2
    exit 0
  fi
  rm -rf "$cache/src"
  mkdir -p "$cache/src"
  git archive "$old" | tar -x -C "$cache/src"
  # Its own target directory: two checkouts of this workspace must never share one.
  (cd "$cache/src" && cargo build --locked -p oned --bin oned --target-dir "$cache/target")
fi

ONEHA_OLD_ONED="$binary" cargo nextest run -p oned --test it --run-ignored only \
  -E 'test(issue_11_a_format_0)'
