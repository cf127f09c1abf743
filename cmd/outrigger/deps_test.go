package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary links the Kubernetes watcher's own discovery.k8s.io/v1 types
// and client-go's REST client, informer and kubeconfig loader, and no
// generated API types: k8s.io/api/discovery/v1 pulls in core/v1 (4.4 MB of
// generated code kept by its initialisation), and client-go's clientset or
// typed clients register every API group (k8s.io/client-go/kubernetes/scheme).
func TestNoKubernetesAPITypesLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "grpcnotrace", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/api/") || strings.HasPrefix(p, "k8s.io/client-go/kubernetes") ||
			strings.HasPrefix(p, "k8s.io/client-go/applyconfigurations") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("cmd/outrigger links %s", strings.Join(bad, ", "))
	}
}
