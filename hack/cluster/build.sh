#!/usr/bin/env bash
# Build (or find cached) the local cluster's binaries from the pinned upstream Go modules.
#
# Usage: hack/cluster/build.sh [all|kubernetes|etcd|crictl|coredns]   build what is not cached
#        hack/cluster/build.sh pin     rewrite hack/cluster/build/*/go.mod from versions.env
#        hack/cluster/build.sh check   fail if a build module disagrees with versions.env
#
# Binaries go to ${ITEMS_CACHE_DIR:-/var/cache/items-platform}/<component>/<version>/, outside the
# repository; a finished build leaves a .complete marker there, so a second run costs nothing.
# The modules' go.sum files are committed and builds use -mod=readonly: a build fetches from the
# Go module proxy exactly the pinned modules and nothing else (GOTOOLCHAIN=local: no toolchain
# download either).
set -euo pipefail
# shellcheck disable=SC2034  # read by say() in lib.sh
SAY_PREFIX="cluster/build"
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD_MODULES="$CLUSTER_DIR/build"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
# Two cores: two compile jobs at once.
GO_P="${GO_P:-2}"

staging_modules=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
    mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

# module_version DIR MODULE: the version DIR/go.mod requires for MODULE.
module_version() {
    (cd "$1" && "$GO" list -m -f '{{.Version}}' "$2")
}

check() {
    local bad=0 got
    got="$(module_version "$BUILD_MODULES/kubernetes" k8s.io/kubernetes)"
    [[ "$got" == "$KUBERNETES_VERSION" ]] || { say "build/kubernetes pins k8s.io/kubernetes $got, versions.env says $KUBERNETES_VERSION"; bad=1; }
    got="$(cd "$BUILD_MODULES/kubernetes" && "$GO" list -m -f '{{if .Replace}}{{.Replace.Version}}{{end}}' k8s.io/client-go)"
    [[ "$got" == "$KUBERNETES_STAGING_VERSION" ]] || { say "build/kubernetes replaces k8s.io/client-go with $got, versions.env says $KUBERNETES_STAGING_VERSION"; bad=1; }
    got="$(module_version "$BUILD_MODULES/etcd" go.etcd.io/etcd/server/v3)"
    [[ "$got" == "$ETCD_VERSION" ]] || { say "build/etcd pins $got, versions.env says $ETCD_VERSION"; bad=1; }
    got="$(module_version "$BUILD_MODULES/crictl" sigs.k8s.io/cri-tools)"
    [[ "$got" == "$CRICTL_VERSION" ]] || { say "build/crictl pins $got, versions.env says $CRICTL_VERSION"; bad=1; }
    got="$(module_version "$BUILD_MODULES/coredns" github.com/coredns/coredns)"
    [[ "$got" == "$COREDNS_VERSION" ]] || { say "build/coredns pins $got, versions.env says $COREDNS_VERSION"; bad=1; }
    if ((bad)); then
        die "build modules disagree with hack/cluster/versions.env: run hack/cluster/build.sh pin"
    fi
    say "build modules agree with versions.env (kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, crictl $CRICTL_VERSION, coredns $COREDNS_VERSION)"
}

pin() {
    local m
    say "pinning build modules to versions.env (this edits hack/cluster/build/*/go.mod and go.sum)"
    (
        cd "$BUILD_MODULES/kubernetes"
        "$GO" mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
        for m in "${staging_modules[@]}"; do
            "$GO" mod edit -replace "k8s.io/$m=k8s.io/$m@$KUBERNETES_STAGING_VERSION"
        done
        GOFLAGS=-mod=mod "$GO" mod tidy
    )
    (cd "$BUILD_MODULES/etcd" && "$GO" mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && GOFLAGS=-mod=mod "$GO" mod tidy)
    (cd "$BUILD_MODULES/crictl" && "$GO" mod edit -require "sigs.k8s.io/cri-tools@$CRICTL_VERSION" && GOFLAGS=-mod=mod "$GO" mod tidy)
    (cd "$BUILD_MODULES/coredns" && "$GO" mod edit -require "github.com/coredns/coredns@$COREDNS_VERSION" && GOFLAGS=-mod=mod "$GO" mod tidy)
    check
}

# build_into COMPONENT VERSION DIR FUNCTION: run FUNCTION OUT_TMP in DIR unless cached.
build_into() {
    local component="$1" version="$2" moddir="$3" fn="$4" out tmp start
    out="$ITEMS_CACHE_DIR/$component/$version"
    if [[ -f "$out/.complete" ]]; then
        say "$component $version: cached in $out"
        return 0
    fi
    tmp="$out.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    start=$SECONDS
    say "$component $version: building into $out (log: $ITEMS_CACHE_DIR/logs/$component-$version.log)"
    mkdir -p "$ITEMS_CACHE_DIR/logs"
    if ! (cd "$moddir" && "$fn" "$tmp") >"$ITEMS_CACHE_DIR/logs/$component-$version.log" 2>&1; then
        tail -n 30 "$ITEMS_CACHE_DIR/logs/$component-$version.log" >&2
        die "$component $version: build failed"
    fi
    rm -rf "$out"
    mv "$tmp" "$out"
    date -u +%FT%TZ >"$out/.complete"
    say "$component $version: built in $((SECONDS - start))s: $(cd "$out" && echo *)"
}

go_build_kubernetes() {
    local minor ldflags="-s -w" p
    minor="${KUBERNETES_VERSION#v1.}"
    minor="${minor%%.*}"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    "$GO" build -p "$GO_P" -trimpath -ldflags "$ldflags" -o "$1/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubelet \
        k8s.io/kubernetes/cmd/kube-proxy \
        k8s.io/kubernetes/cmd/kubectl
}

go_build_etcd() {
    "$GO" build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3
}

go_build_crictl() {
    "$GO" build -p "$GO_P" -trimpath \
        -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
        -o "$1/crictl" sigs.k8s.io/cri-tools/cmd/crictl
}

go_build_coredns() {
    "$GO" build -p "$GO_P" -trimpath \
        -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
        -o "$1/coredns" .
}

build_kubernetes() { build_into kubernetes "$KUBERNETES_VERSION" "$BUILD_MODULES/kubernetes" go_build_kubernetes; }
build_etcd() { build_into etcd "$ETCD_VERSION" "$BUILD_MODULES/etcd" go_build_etcd; }
build_crictl() { build_into crictl "$CRICTL_VERSION" "$BUILD_MODULES/crictl" go_build_crictl; }
build_coredns() { build_into coredns "$COREDNS_VERSION" "$BUILD_MODULES/coredns" go_build_coredns; }

[[ -x "$GO" ]] || die "no Go toolchain (looked for go on PATH and /usr/local/go/bin/go)"
case "${1:-all}" in
    all) check; build_etcd; build_crictl; build_coredns; build_kubernetes ;;
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    crictl) build_crictl ;;
    coredns) build_coredns ;;
    pin) pin ;;
    check) check ;;
    *) die "unknown command '$1' (use all, kubernetes, etcd, crictl, coredns, pin or check)" ;;
esac
