#!/usr/bin/env bash
# Bootstrap a project-local SoftHSM 2 token for payswitch. Idempotent: safe to run on every
# `make run` / `make test`.
#
#   1. installs the Debian package softhsm2 when the PKCS#11 module is missing (apt-get, no
#      prompts; `apt-get update` only when the first install attempt fails);
#   2. writes a private SOFTHSM2_CONF (token directory under the project, file backend), so no
#      root and no system-wide token directory are needed after the package is installed;
#   3. creates the token with its label and SO/user PINs unless a token with that label exists.
#
# Environment (defaults are for development only; production injects real PINs):
#   PAYSWITCH_HSM_HOME    directory for the conf and tokens   (default: <repo>/.softhsm)
#   SOFTHSM2_CONF         conf file path                      (default: $PAYSWITCH_HSM_HOME/softhsm2.conf)
#   PAYSWITCH_HSM_MODULE  PKCS#11 module path                 (default: /usr/lib/softhsm/libsofthsm2.so)
#   PAYSWITCH_HSM_TOKEN   token label                         (default: payswitch)
#   PAYSWITCH_HSM_PIN     user PIN                            (default: 1234, dev only)
#   PAYSWITCH_HSM_SO_PIN  security officer PIN                (default: 5678, dev only)
#
# Keep these defaults in step with hsm/config.py. PINs are passed to softhsm2-util on its command
# line (it has no other non-interactive way); never echo them.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hsm_home="${PAYSWITCH_HSM_HOME:-$repo_root/.softhsm}"
conf="${SOFTHSM2_CONF:-$hsm_home/softhsm2.conf}"
module="${PAYSWITCH_HSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
label="${PAYSWITCH_HSM_TOKEN:-payswitch}"
user_pin="${PAYSWITCH_HSM_PIN:-1234}"
so_pin="${PAYSWITCH_HSM_SO_PIN:-5678}"

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
# Concurrent runs must not both write the conf or both create the token (duplicate labels).
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
export SOFTHSM2_CONF="$conf"

if softhsm2-util --module "$module" --show-slots 2>/dev/null \
  | grep -Eq "^[[:space:]]*Label:[[:space:]]+${label}[[:space:]]*$"; then
  log "token '$label' present (conf $conf)"
else
  softhsm2-util --module "$module" --init-token --free --label "$label" \
    --so-pin "$so_pin" --pin "$user_pin" >/dev/null
  log "token '$label' created (conf $conf)"
fi
echo "SOFTHSM2_CONF=$conf"
