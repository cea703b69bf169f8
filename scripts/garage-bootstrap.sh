#!/usr/bin/env bash
# Bootstraps the single Garage node of docker-compose.yml once it runs: layout, bucket, and the
# development key the servers use (the FIELDSYNC_S3_* values in docker-compose.yml). Running it
# again changes nothing.
#
#   docker compose up -d && scripts/garage-bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
garage() { docker compose exec -T garage /garage "$@"; }
key_id=GK0123456789abcdef01234567
secret=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

for _ in $(seq 30); do garage status >/dev/null 2>&1 && break; sleep 1; done
node=$(garage status | awk '/NO ROLE ASSIGNED|HEALTHY NODES/{f=1} f && $1 ~ /^[0-9a-f]{16}$/ {print $1; exit}')
if garage layout show | grep -q "No nodes currently have a role"; then
    garage layout assign -z dc1 -c 1G "$node"
    garage layout apply --version 1
fi
garage bucket info fieldsync >/dev/null 2>&1 || garage bucket create fieldsync
garage key info "$key_id" >/dev/null 2>&1 || garage key import --yes -n fieldsync "$key_id" "$secret"
garage bucket allow --read --write --owner fieldsync --key "$key_id"
echo "Garage is ready: bucket fieldsync, key $key_id"
