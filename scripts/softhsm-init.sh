#!/usr/bin/env bash
# Bootstrap a project-local SoftHSM 2 installation for payswitch. Idempotent: safe to run on every
# `make run` / `make test`. The tokens themselves (one per party, random PINs in owner-only files)
# are made by `payswitch-hsm init` (hsm/provision.py), which runs this script first.
#
#   1. installs the Debian package softhsm2 when the PKCS#11 module is missing (apt-get, no
#      prompts; `apt-get update` only when the first install attempt fails);
#   2. writes a private SOFTHSM2_CONF (token directory under the project, file backend), so no
#      root and no system-wide token directory are needed after the package is installed;
#
# Environment:
#   PAYSWITCH_HSM_HOME    directory for the conf and tokens   (default: <repo>/.softhsm)
#   SOFTHSM2_CONF         conf file path                      (default: $PAYSWITCH_HSM_HOME/softhsm2.conf)
#   PAYSWITCH_HSM_MODULE  PKCS#11 module path                 (default: /usr/lib/softhsm/libsofthsm2.so)
#
# Keep these defaults in step with hsm/config.py.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hsm_home="${PAYSWITCH_HSM_HOME:-$repo_root/.softhsm}"
conf="${SOFTHSM2_CONF:-$hsm_home/softhsm2.conf}"
module="${PAYSWITCH_HSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"

log() { echo "softhsm-init: $*" >&2; }

install_softhsm() {
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "need root or sudo to install softhsm2"; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q softhsm2 >/dev/null; then
    log "install failed; running apt-get update and retrying"
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q softhsm2 >/dev/null
  fi
}

if [[ ! -f "$module" ]]; then
  log "PKCS#11 module $module missing; installing softhsm2"
  install_softhsm
  [[ -f "$module" ]] || { log "module still missing at $module"; exit 1; }
fi

tokendir="$(dirname "$conf")/tokens"
mkdir -p "$tokendir"
chmod 700 "$(dirname "$conf")" "$tokendir"
# Concurrent runs must not both write the conf.
exec 9>"$(dirname "$conf")/.init.lock"
if command -v flock >/dev/null; then flock 9; fi
wanted_conf="# written by scripts/softhsm-init.sh
directories.tokendir = $tokendir
objectstore.backend = file
log.level = ERROR
slots.removable = false
"
if [[ -f "$conf" ]] && [[ "$(head -n1 "$conf")" != "# written by scripts/softhsm-init.sh" ]]; then
  log "using existing SoftHSM config $conf as is (not written by this script)"
elif [[ ! -f "$conf" ]] || [[ "$(cat "$conf")"$'\n' != "$wanted_conf" ]]; then
  printf '%s' "$wanted_conf" >"$conf"
  chmod 600 "$conf"
fi
echo "SOFTHSM2_CONF=$conf"
