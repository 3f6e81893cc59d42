//go:build tools

// Package tools records crictl, which this module builds, so that
// `go mod tidy` keeps every module it needs in go.sum.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
