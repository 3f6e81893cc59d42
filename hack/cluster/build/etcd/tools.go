//go:build tools

// Package tools records the etcd server this module builds, so that
// `go mod tidy` keeps every module it needs in go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
