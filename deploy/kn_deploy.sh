#!/usr/bin/env bash
# Deploys Knative manifests the way vSwarm's tools/kn_deploy.sh does: each
# file's ${AWS_ACCESS_KEY}, ${AWS_SECRET_KEY}, ${BUCKET_NAME}, ${AWS_REGION}
# and ${AWS_ENDPOINT_URL} are replaced by the environment's values, then the
# result goes to `kubectl apply -f -`.
#
#   export AWS_ACCESS_KEY=... AWS_SECRET_KEY=... BUCKET_NAME=...
#   deploy/kn_deploy.sh deploy/knative/s3-envsubst/*
#
# --dry-run prints the filled-in manifests instead of applying them.
# A placeholder whose variable is unset stops the script before anything is
# applied, naming the variable (envsubst would silently insert "").
# The other route, with a Secret and a ConfigMap, needs no script: see
# deploy/knative/s3 and the README.
set -euo pipefail

DRY_RUN=false
if [ "${1:-}" = "--dry-run" ]; then
  DRY_RUN=true
  shift
fi
if [ "$#" -eq 0 ]; then
  echo "usage: $0 [--dry-run] MANIFEST..." >&2
  exit 2
fi

VARS="AWS_ACCESS_KEY AWS_SECRET_KEY BUCKET_NAME AWS_REGION AWS_ENDPOINT_URL"
missing=""
for file in "$@"; do
  for var in $VARS; do
    if grep -v '^[[:space:]]*#' "$file" | grep -q "\${$var}" && [ -z "${!var:-}" ]; then
      case " $missing " in *" $var "*) ;; *) missing="$missing $var" ;; esac
    fi
  done
done
if [ -n "$missing" ]; then
  echo "error: the manifests need these variables, which are unset or empty:$missing" >&2
  exit 1
fi

for file in "$@"; do
  # perl (part of every Debian/Ubuntu base system) rather than envsubst:
  # only the listed variables are replaced; any other "$" stays as written.
  filled=$(VARS="$VARS" perl -pe '
    BEGIN { %ok = map { $_ => 1 } split " ", $ENV{VARS} }
    s/\$\{(\w+)\}/$ok{$1} ? $ENV{$1} : "\${$1}"/ge' "$file")
  if $DRY_RUN; then
    printf -- '---\n%s\n' "$filled"
  else
    printf '%s\n' "$filled" | kubectl apply -f -
  fi
done
