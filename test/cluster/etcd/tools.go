//go:build tools

// Package tools only records the dependency on the etcd server's main package (the root of
// go.etcd.io/etcd/server/v3), so that `go mod tidy` keeps go.mod/go.sum complete; it is never built.
package tools

import _ "go.etcd.io/etcd/server/v3"
