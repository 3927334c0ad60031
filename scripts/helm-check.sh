#!/usr/bin/env bash
# Checks what deploy/ ships, offline (`make helm`, part of `make test`):
#   - helm lint --strict on the chart with each values file in
#     deploy/helm/dvsync/ci/ (the defaults alone must fail: they hold no
#     mapping);
#   - helm template with the same values, and every rendered manifest, and
#     those of deploy/kubernetes/, decoded strictly against the Kubernetes
#     API types by scripts/k8scheck (kubeconform would fetch its schemas
#     from the network);
#   - no value of secrets.values ends up in a rendered ConfigMap;
#   - `dvsync validate` accepts the config and mappings each rendered
#     ConfigMap holds (except the values files in pending_validate, which
#     use config fields dvsync does not know yet; they must still fail, so
#     that the day they validate they are taken off the list);
#   - systemd-analyze verify on deploy/systemd/dvsync.service, where
#     systemd-analyze is installed.
# HELM names the helm binary (default: helm on PATH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

helm=${HELM:-helm}
# Render for a current cluster: helm's default is far older than the
# chart's kubeVersion.
kube_version=1.33.0
chart=deploy/helm/dvsync
tools=$PWD/.tools/bin
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Values files whose rendered config uses fields still being wired.
pending_validate=()

# Every variable the rendered configs expand, well formed, reaching nothing.
validate_env=(
	PG_DSN=postgres://dvsync:pw@127.0.0.1:1/app
	STATE_DSN=postgres://dvsync:pw@127.0.0.1:1/app
	DATAVERSE_TOKEN=token
	DATAVERSE_CLIENT_SECRET=secret
	DATAVERSE_WEBHOOK_KEY=key
)

log() { printf 'helm-check: %s\n' "$*"; }
die() {
	printf 'helm-check: error: %s\n' "$*" >&2
	exit 1
}

# k8scheck is its own module (GOFLAGS meant for dvsync's, such as
# -modfile, must not reach it); go build is incremental, so this is quick
# after the first time.
mkdir -p "$tools"
GOFLAGS='' go build -C scripts/k8scheck -o "$tools/k8scheck" .
CGO_ENABLED=0 go build -o "$out/dvsync" ./cmd/dvsync

# validate runs dvsync validate on the config k8scheck wrote out of a
# rendered ConfigMap.
validate() {
	local name=$1 dir=$2 pending=no p
	for p in "${pending_validate[@]}"; do
		[[ $p == "$name" ]] && pending=yes
	done
	if env "${validate_env[@]}" "$out/dvsync" validate -c "$dir/dvsync.yaml" >"$out/validate-$name.txt" 2>&1; then
		[[ $pending == no ]] || die "$name: dvsync validate accepts it now: remove it from pending_validate"
	elif [[ $pending == no ]]; then
		cat "$out/validate-$name.txt" >&2
		die "$name: dvsync validate refused the rendered config"
	else
		log "$name: not validated yet (pending): $(head -1 "$out/validate-$name.txt")"
	fi
}

log "template (default values: must ask for a mapping)"
if "$helm" template dvsync "$chart" --kube-version "$kube_version" >"$out/default.txt" 2>&1 ||
	! grep -q 'mappings: give at least one mapping file' "$out/default.txt"; then
	cat "$out/default.txt" >&2
	die "the chart's default values rendered without a mapping"
fi

for v in "$chart"/ci/*.yaml; do
	name=$(basename "$v" .yaml)
	args=(-f "$v")
	log "lint and template ($name)"
	"$helm" lint --strict --kube-version "$kube_version" "$chart" "${args[@]}" >"$out/lint-$name.txt" ||
		{ cat "$out/lint-$name.txt"; die "helm lint failed with $name values"; }
	"$helm" template dvsync "$chart" --kube-version "$kube_version" --namespace dvsync "${args[@]}" >"$out/$name.yaml"
	"$tools/k8scheck" -configmaps "$out/cm-$name" "$out/$name.yaml"
	validate "$name" "$out/cm-$name/dvsync"
	# Every secret value must stay out of the ConfigMap.
	while IFS= read -r secret; do
		[[ -z $secret ]] && continue
		if awk '/^kind: ConfigMap/,/^---/' "$out/$name.yaml" | grep -qF -- "$secret"; then
			die "$name: a value of secrets.values appears in the rendered ConfigMap"
		fi
	done < <("$helm" template dvsync "$chart" --kube-version "$kube_version" "${args[@]}" --show-only templates/secret.yaml 2>/dev/null |
		sed -n 's/^  [A-Z_][A-Z0-9_]*: "\(.*\)"$/\1/p')
done

log "deploy/kubernetes"
"$tools/k8scheck" deploy/kubernetes/*.yaml

if command -v systemd-analyze >/dev/null; then
	log "systemd-analyze verify deploy/systemd/dvsync.service"
	# verify wants ExecStart's binary to exist: point the unit at the
	# build above.
	sed "s|/usr/local/bin/dvsync|$out/dvsync|" deploy/systemd/dvsync.service >"$out/dvsync.service"
	systemd-analyze verify "$out/dvsync.service"
else
	log "systemd-analyze not installed: deploy/systemd/dvsync.service not verified"
fi
log ok
