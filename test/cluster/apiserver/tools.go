//go:build tools

// Package tools only records the dependency on kube-apiserver's main package, so that
// `go mod tidy` keeps everything it needs in go.mod/go.sum; it is never built.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
