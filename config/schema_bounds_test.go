package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestRegistrationBoundsFromSchema: the registration blocks' ports and
// weights refuse values just outside the schema's ranges, and the error
// states the schema's bounds.
func TestRegistrationBoundsFromSchema(t *testing.T) {
	consul := func(service string) string { return "register:\n  consul:\n    service: " + service + "\n" }
	nacos := func(extra string) string {
		return "register:\n  nacos: {servers: [127.0.0.1:8848], service: web, ip: 127.0.0.1, " + extra + "}\n"
	}
	between := func(label string, lo, hi int) string {
		return fmt.Sprintf("%s: must be between %d and %d", label, lo, hi)
	}
	for _, tc := range []struct{ src, want string }{
		{consul(fmt.Sprintf("{name: web, port: %d}", MaxPort+1)), between("port", MinPort, MaxPort)},
		{consul(fmt.Sprintf("{name: web, port: %d}", MinPort-1)), between("port", MinPort, MaxPort)},
		{consul(fmt.Sprintf("{name: web, port: 80, weights: {passing: %d}}", MinConsulPassingWeight-1)), between("passing", MinConsulPassingWeight, MaxConsulWeight)},
		{consul(fmt.Sprintf("{name: web, port: 80, weights: {warning: %d}}", MaxConsulWeight+1)), between("warning", 0, MaxConsulWeight)},
		{nacos(fmt.Sprintf("port: %d", MaxPort+1)), between("port", MinPort, MaxPort)},
		{nacos(fmt.Sprintf("port: 80, grpc_port: %d", MaxPort+1)), between("grpc_port", MinPort, MaxPort)},
		{nacos(fmt.Sprintf("port: 80, weight: %d", MaxNacosWeight+1)), between("weight", 0, MaxNacosWeight)},
	} {
		_, err := Parse("t.yaml", []byte(tc.src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
		}
	}
	for _, src := range []string{
		consul(fmt.Sprintf("{name: web, port: %d, weights: {passing: %d, warning: %d}}", MaxPort, MaxConsulWeight, MaxConsulWeight)),
		nacos(fmt.Sprintf("port: %d, weight: %d", MinPort, MaxNacosWeight)),
	} {
		if _, err := Parse("t.yaml", []byte(src), nil); err != nil {
			t.Errorf("%s: %v, want it accepted (the bounds are inclusive)", src, err)
		}
	}
}
