package itest

// Metric series of departed targets through the binary: targets that come
// and go by Consul discovery leave no series behind in GET /metrics.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// seTargetSeries returns the number of series g exposes and those naming
// target addr.
func seTargetSeries(t *testing.T, g *gateway, addr string) (int, []string) {
	t.Helper()
	m := hcMetrics(t, g)
	var of []string
	for s := range m {
		if strings.Contains(s, `target="`+addr+`"`) {
			of = append(of, s)
		}
	}
	return len(m), of
}

// TestConsulTargetSeriesChurn: instances registered in Consul, served, then
// deregistered, cycle after cycle: each one's series leave /metrics once
// discovery drops it, and the series count returns to its baseline.
func TestConsulTargetSeriesChurn(t *testing.T) {
	const cycles = 30
	ag := consultest.Start(t)
	stay := startBackend(t, "stay", nil)
	csRegister(t, ag, csInstance(t, "web", "web-stay", stay))
	g := startGateway(t, csConsulConfig(ag.HTTPAddr, "web", "", "3s"))
	c := newClient()
	csWaitBackends(t, c, g, 15*time.Second, "stay")

	// cycle registers a new instance, waits for it to serve and for its
	// requests to be counted, deregisters it and waits for its series to
	// go; it returns the series count while the instance served.
	cycle := func(i int) int {
		t.Helper()
		name := fmt.Sprintf("churn-%d", i)
		b := startBackend(t, name, nil)
		csRegister(t, ag, csInstance(t, "web", name, b))
		csPoll(t, 15*time.Second, func() bool { return csWho(t, c, g) == name },
			func() string { return name + " to serve" })
		var with []string
		var n int
		csPoll(t, 5*time.Second, func() bool { n, with = seTargetSeries(t, g, b.Addr); return len(with) > 0 },
			func() string { return "the series of " + name })
		csDeregister(t, ag, name)
		csPoll(t, 15*time.Second, func() bool { _, with = seTargetSeries(t, g, b.Addr); return len(with) == 0 },
			func() string { return fmt.Sprintf("the series of departed %s to go (left: %v)", name, with) })
		return n
	}
	// One cycle first: the discovery series of a change and of a removal
	// exist from then on.
	cycle(0)
	base, _ := seTargetSeries(t, g, "")
	peak := base
	for i := 1; i <= cycles; i++ {
		peak = max(peak, cycle(i))
	}
	n, _ := seTargetSeries(t, g, "")
	t.Logf("series in /metrics: baseline %d, %d while a churned instance served, %d after %d register/serve/deregister cycles", base, peak, n, cycles)
	if n != base {
		t.Fatalf("%d series after %d discovery cycles, want the baseline %d", n, cycles, base)
	}
}
