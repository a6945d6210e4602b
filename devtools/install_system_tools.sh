#!/usr/bin/env bash
# Debian packages the project needs that PyPI does not have, installed when missing.
#   devtools/install_system_tools.sh          prometheus + promtool, chromium + chromedriver (the tests)
#   devtools/install_system_tools.sh wrk      wrk (the API benchmark; `make bench`)
# Debian's prometheus package does not start its service here (no init); tests start their own.
set -euo pipefail
commands=("$@")
if [ ${#commands[@]} -eq 0 ]; then
  commands=(prometheus promtool chromium chromedriver)
fi
declare -A package_of=([prometheus]=prometheus [promtool]=prometheus [wrk]=wrk [chromium]=chromium
                       [chromedriver]=chromium-driver)
missing=()
for command in "${commands[@]}"; do
  command -v "$command" >/dev/null || missing+=("${package_of[$command]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
for command in "${commands[@]}"; do
  command -v "$command" >/dev/null || { echo "$command is still missing" >&2; exit 1; }
done
