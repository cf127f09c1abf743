package consultest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestAgentLifecycle(t *testing.T) {
	a := Start(t)
	if leader, err := a.Client.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("leader = %q, err %v", leader, err)
	}
	ports := a.Ports
	a.Kill()
	if _, err := a.Client.Status().Leader(); err == nil {
		t.Fatalf("agent still answers after Kill")
	}
	a.Restart()
	if a.Ports != ports {
		t.Errorf("ports changed across Restart: %+v -> %+v", ports, a.Ports)
	}
	if leader, err := a.Client.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("after restart: leader = %q, err %v", leader, err)
	}
	a.Stop()
	a.Stop() // idempotent
}

// fatalTB records Fatalf and ends the goroutine like testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "consul")
	t.Setenv(BinEnv, missing)
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Binary(f)
	}()
	<-done
	if !strings.Contains(f.msg, "make consul") || !strings.Contains(f.msg, missing) || strings.Contains(f.msg, "\n") {
		t.Errorf("message = %q, want one line naming the path and `make consul`", f.msg)
	}
}
