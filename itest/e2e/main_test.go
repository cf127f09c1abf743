package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/internal/testbin"
)

var (
	// dockerErr is why no test can run (no Docker engine); nil otherwise.
	dockerErr error
	// provider talks to the Docker engine.
	provider *testcontainers.DockerProvider
	// runID makes this run's image tags and container names unique, so
	// concurrent runs on one engine do not collide.
	runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + strconv.Itoa(os.Getpid())
)

func TestMain(m *testing.M) {
	// Before anything touches testcontainers, whose configuration is read
	// once: the reaper's image cannot be pulled without a registry.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// Quiet by default; each container logs its steps to its test.
	tclog.SetDefault(tclog.NewNoopLogger())
	dockerErr = connectDocker()
	if dockerErr != nil {
		fmt.Printf("itest/e2e: skipping the container tests: no Docker engine answers (%s)\n", strings.Join(strings.Fields(dockerErr.Error()), " "))
	} else {
		reapDeadRuns()
	}
	code := m.Run()
	removeImages()
	os.Exit(code)
}

// connectDocker creates the provider and pings the engine.
func connectDocker() error {
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Client().Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return err
	}
	provider = p
	return nil
}

// Labels on every container, network and image a run creates.
const (
	labelHost = "outrigger-e2e.host"
	labelPID  = "outrigger-e2e.pid"
)

// runLabels are this run's labels.
func runLabels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{labelHost: host, labelPID: strconv.Itoa(os.Getpid())}
}

// reapDeadRuns removes the containers, volumes, networks, images and
// build contexts of earlier runs on this host whose test process is gone.
func reapDeadRuns() {
	if runtime.GOOS != "linux" {
		return // process liveness is checked with signal 0
	}
	host, _ := os.Hostname()
	dead := func(labels map[string]string) bool {
		if labels[labelHost] != host {
			return false
		}
		pid, err := strconv.Atoi(labels[labelPID])
		if err != nil || pid == os.Getpid() {
			return false
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			return true
		}
		err = p.Signal(syscall.Signal(0))
		return err != nil && !errors.Is(err, syscall.EPERM)
	}
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), stagePrefix+"*"))
	for _, dir := range stale {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), stagePrefix), "-")
		if dead(map[string]string{labelHost: host, labelPID: pid}) {
			os.RemoveAll(dir)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := provider.Client()
	byLabel := client.Filters{}.Add("label", labelPID)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: byLabel}); err == nil {
		for _, c := range cs.Items {
			if dead(c.Labels) {
				_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: byLabel}); err == nil {
		for _, v := range vs.Items {
			if dead(v.Labels) {
				_, _ = cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
			}
		}
	}
	if ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: byLabel}); err == nil {
		for _, n := range ns.Items {
			if dead(n.Labels) {
				_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			}
		}
	}
	if is, err := cli.ImageList(ctx, client.ImageListOptions{Filters: byLabel}); err == nil {
		for _, i := range is.Items {
			if dead(i.Labels) {
				for _, tag := range i.RepoTags {
					_, _ = cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true})
				}
			}
		}
	}
}

// requireDocker skips t when no engine answers (TestMain said why).
func requireDocker(t *testing.T) {
	t.Helper()
	if dockerErr != nil {
		t.Skip("no Docker engine (see the line above)")
	}
}

// imageSet names the images built for this run.
type imageSet struct {
	Outrigger, Consul, Demo string
}

var (
	imagesOnce sync.Once
	built      imageSet
	builtErr   error
	// builtTags are removed by TestMain when the run ends.
	builtTagsMu sync.Mutex
	builtTags   []string
	stageDir    string
)

// images builds the three images once per run and returns their tags.
func images(t *testing.T) imageSet {
	t.Helper()
	requireDocker(t)
	consulBin := consultest.Binary(t) // fails t with one line when missing
	imagesOnce.Do(func() {
		start := time.Now()
		built, builtErr = buildImages(consulBin)
		if builtErr == nil {
			fmt.Printf("itest/e2e: built %s, %s, %s in %s\n", built.Outrigger, built.Consul, built.Demo, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if builtErr != nil {
		t.Fatalf("building the images: %v", builtErr)
	}
	return built
}

// repoRoot is the nearest directory above the working directory holding
// go.mod.
func repoRoot() (string, error) { return testbin.RepoRoot() }

// stagePrefix names the build-context directories in os.TempDir(),
// followed by the run's process id.
const stagePrefix = "outrigger-e2e-images-"

// caBundle is the host CA bundle that deployments/Dockerfile copies.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// buildImages stages the three build contexts as the Makefile does and
// builds them.
func buildImages(consulBin string) (imageSet, error) {
	root, err := repoRoot()
	if err != nil {
		return imageSet{}, err
	}
	stageDir, err = os.MkdirTemp("", stagePrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return imageSet{}, err
	}
	rootfs := filepath.Join(root, "deployments", "rootfs", "etc")
	type spec struct {
		name, dockerfile string
		// pkg is built into the context under the base name of pkg;
		// files are copied: context name -> source path.
		pkg   string
		files map[string]string
	}
	specs := []spec{
		{name: "outrigger", dockerfile: "deployments/Dockerfile", pkg: "./cmd/outrigger",
			files: map[string]string{"ca-certificates.crt": caBundle}},
		{name: "consul", dockerfile: "deployments/consul/Dockerfile",
			files: map[string]string{"consul": consulBin}},
		{name: "demo-service", dockerfile: "deployments/demo-service/Dockerfile", pkg: "./cmd/demo-service"},
	}
	tags := make([]string, len(specs))
	for i, s := range specs {
		dir := filepath.Join(stageDir, s.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return imageSet{}, err
		}
		files := map[string]string{
			"Dockerfile": filepath.Join(root, s.dockerfile),
			"passwd":     filepath.Join(rootfs, "passwd"),
			"group":      filepath.Join(rootfs, "group"),
		}
		for k, v := range s.files {
			files[k] = v
		}
		for dst, src := range files {
			if err := linkOrCopy(src, filepath.Join(dir, dst)); err != nil {
				return imageSet{}, fmt.Errorf("staging %s: %w", s.name, err)
			}
		}
		if s.pkg != "" {
			out := filepath.Join(dir, filepath.Base(s.pkg))
			cmd := exec.Command("go", "build", "-trimpath", "-tags=grpcnotrace", "-ldflags=-s -w -X main.version=e2e", "-o", out, s.pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			if b, err := cmd.CombinedOutput(); err != nil {
				return imageSet{}, fmt.Errorf("go build %s: %v\n%s", s.pkg, err, b)
			}
		}
		tag, err := buildImage(dir, s.name)
		if err != nil {
			return imageSet{}, err
		}
		tags[i] = tag
	}
	return imageSet{Outrigger: tags[0], Consul: tags[1], Demo: tags[2]}, nil
}

// buildImage builds the context dir through testcontainers and records the
// tag for removal.
func buildImage(dir, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var buildLog bytes.Buffer
	req := &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context:        dir,
		Dockerfile:     "Dockerfile",
		Repo:           "outrigger-e2e/" + name,
		Tag:            runID,
		KeepImage:      true,
		BuildLogWriter: &buildLog,
		BuildOptionsModifier: func(o *client.ImageBuildOptions) {
			o.Labels = runLabels()
		},
	}}
	tag, err := provider.BuildImage(ctx, req)
	if err != nil {
		// Once more: a concurrent run may have removed a cached layer
		// this build was using.
		buildLog.Reset()
		tag, err = provider.BuildImage(ctx, req)
	}
	if err != nil {
		return "", fmt.Errorf("docker build %s: %v\n%s", name, err, buildLog.String())
	}
	builtTagsMu.Lock()
	builtTags = append(builtTags, tag)
	builtTagsMu.Unlock()
	return tag, nil
}

// linkOrCopy hard-links src to dst (the Consul binary is 130 MB), copying
// when the two are on different file systems.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeImages removes this run's images and staging directory.
func removeImages() {
	if stageDir != "" {
		os.RemoveAll(stageDir)
	}
	if provider == nil {
		return
	}
	builtTagsMu.Lock()
	defer builtTagsMu.Unlock()
	for _, tag := range builtTags {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		// Its untagged parents go too unless another image uses them; a
		// concurrent build that loses a cached layer this way retries.
		if _, err := provider.Client().ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
			fmt.Printf("itest/e2e: removing image %s: %v\n", tag, err)
		}
		cancel()
	}
}
