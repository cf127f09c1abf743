// Package itest holds Outrigger's integration tests: they build the real
// binary once (TestMain) and run it against real backends on loopback, a
// real Consul agent (bin/consul, built by `make consul`), the wire-level
// Nacos server of internal/nacostest and a miekg/dns server. Every test
// starts its own processes on kernel-chosen ports, bounds its loops in
// count and time, and waits with polls that have deadlines.
package itest
