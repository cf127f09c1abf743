// Package deployments holds what runs Outrigger outside a Go toolchain:
// the container images (Dockerfile, consul/, demo-service/, rootfs/), the
// compose example (compose/) and the Kubernetes manifests (k8s/). It has
// no code of its own.
//
// Its tests hold those files to what the rest of the tree expects: the
// Dockerfiles stay FROM scratch around a binary built outside the image,
// running as the non-root user of rootfs/etc/passwd; every image the
// compose file runs is one the Makefile builds, never pulled; every
// configuration the compose file and the ConfigMap carry is valid for the
// outrigger in this tree, with the environment its container gets; the
// Deployment keeps Outrigger a native sidecar with probes on the admin
// port, a preStop sleep, a grace period longer than the drain, a hardened
// security context, and a memory request that covers the resident memory
// measured under load (TestOutriggerPeakRSSFitsMemoryRequest measures it
// again on every run).
//
// The containers themselves run in itest/e2e.
package deployments
