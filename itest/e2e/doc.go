// Package e2e runs Outrigger's container images end to end with
// testcontainers-go: Consul, service instances each with an Outrigger
// sidecar that registers it, and a client sidecar that routes to them by
// Consul discovery, all on a private Docker network.
//
// Contract:
//   - The images are built from this tree on first use, exactly as
//     `make image image-consul image-demo` builds them: static binaries
//     (CGO_ENABLED=0) built here, staged with the files the Dockerfiles in
//     deployments/ copy, and built FROM scratch through testcontainers, so
//     no registry is needed. Tags are unique to the run and removed when
//     it ends; the Consul binary is bin/consul (`make consul`).
//   - Every container, volume and network is removed by t.Cleanup (Ryuk,
//     testcontainers' reaper, is disabled: its image cannot be pulled
//     without a registry). Everything a run creates is labelled with its
//     host and process id; TestMain first removes what earlier runs on this
//     host left behind when they were killed before their cleanups
//     (go test -timeout, Ctrl-C), never anything of a live run. Ports are
//     published on 127.0.0.1 only, and the tests send traffic only there;
//     instance pods reach each other on their private network.
//   - The sidecars run the configurations of the compose example
//     (deployments/compose/*.yaml, bind-mounted read-only), with read-only
//     root filesystems, no capabilities and the images' non-root user. A
//     test that needs more derives a copy with one key added (deriveConfig:
//     the canaries' meta version, the client's admin.state_file, which
//     lives on a Docker volume).
//   - Where no Docker engine answers, TestMain prints one line saying so
//     and every test skips.
//   - Every wait is a poll with a deadline; every load loop is bounded in
//     requests and in time.
package e2e
