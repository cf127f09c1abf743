// Package testbin finds the real programs the tests run (a Consul agent,
// a kube-apiserver): an environment variable names one, else it is
// <repo root>/bin/<name>, where the Makefile's target of the same name
// puts it. A missing binary fails the test with the command that builds
// it; nothing is skipped.
package testbin

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot walks up from the working directory to the directory holding
// go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Find returns the path of the program name: $env when set, else
// <repo root>/bin/<name>. It fails t, naming `make <name>`, when there is
// no such file.
func Find(t testing.TB, name, env string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path = filepath.Join(root, "bin", name)
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		t.Fatalf("%s not found at %s: run `make %s` (or set %s)", name, path, name, env)
	}
	return path
}
