// Package kubetest runs a real kube-apiserver, over a real etcd, for tests.
//
// Contract:
//
//   - Start launches etcd (Debian's etcd-server, found on PATH or at
//     $OUTRIGGER_ETCD_BIN) and kube-apiserver ($OUTRIGGER_KUBE_APISERVER_BIN,
//     else <repo root>/bin/kube-apiserver, built by `make kube-apiserver`)
//     on 127.0.0.1 only, on kernel-chosen free ports, with data, certificates
//     and logs in t.TempDir(). It returns once /readyz answers ok and the
//     "default" namespace exists, or fails the test (deadline 60s). A
//     missing binary fails the test with one line naming what to install
//     or build; nothing is skipped.
//   - Authentication is by static bearer tokens: "admin" is in
//     system:masters (Client uses it); every other user named to Start has
//     no permissions until the test grants some (Grant). Authorization is
//     RBAC. No controller runs: tests write Services and EndpointSlices
//     themselves.
//   - Stop, StopAPIServer, KillAPIServer and StartAPIServer support outage
//     tests: the API
//     server restarts on the same port, against the same etcd (the data
//     survives).
//   - Everything is stopped by t.Cleanup; on Linux the processes get SIGKILL
//     from the kernel if the test binary dies without cleaning up
//     (Pdeathsig).
//   - Nothing is shared between Clusters; no package state.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	rbacv1client "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/rest"

	"github.com/outrigger-gw/outrigger/internal/testbin"
)

// Environment variables overriding the binaries' paths.
const (
	APIServerBinEnv = "OUTRIGGER_KUBE_APISERVER_BIN"
	EtcdBinEnv      = "OUTRIGGER_ETCD_BIN"
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// URL is the API server's https URL on 127.0.0.1.
	URL string
	// CAFile holds the API server's self-signed serving certificate
	// chain (what a client trusts).
	CAFile string
	// Core, Discovery and RBAC are typed clients authenticated as admin.
	Core      corev1client.CoreV1Interface
	Discovery discoveryv1client.DiscoveryV1Interface
	RBAC      rbacv1client.RbacV1Interface
	authz     authorizationv1client.AuthorizationV1Interface // for Grant's wait

	t      testing.TB
	dir    string
	tokens map[string]string
	bin    string
	port   int
	// apiArgs are the API server's flags (the same on every start).
	apiArgs []string
	etcd    *proc
	mu      sync.Mutex // guards api
	api     *proc
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Binary returns the kube-apiserver's path or fails t.
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Find(t, "kube-apiserver", APIServerBinEnv)
}

func etcdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EtcdBinEnv); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("kubetest: etcd not found on PATH: install it (apt-get install etcd-server; .ci/run does) or set %s", EtcdBinEnv)
	}
	return p
}

// Options shape a Cluster.
type Options struct {
	// Users are the names of extra users without permissions (their
	// tokens: Token).
	Users []string
	// APIServerFlags are more kube-apiserver flags.
	APIServerFlags []string
}

// Start starts etcd and kube-apiserver; users are the names of extra
// users without permissions (their tokens: Token).
func Start(t testing.TB, users ...string) *Cluster {
	t.Helper()
	return StartOpts(t, Options{Users: users})
}

// StartOpts starts etcd and kube-apiserver as o says.
func StartOpts(t testing.TB, o Options) *Cluster {
	t.Helper()
	users := o.Users
	c := &Cluster{t: t, dir: t.TempDir(), bin: Binary(t), tokens: map[string]string{}}
	etcdBin := etcdBinary(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("kubetest: openssl not found on PATH (it makes the service-account signing key)")
	}
	t.Cleanup(c.Stop)
	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	c.etcd, err = startProc("etcd", filepath.Join(c.dir, "etcd.log"), etcdBin,
		"--name", "kubetest",
		"--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--initial-cluster", "kubetest=http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--log-level", "warn")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	key, pub := filepath.Join(c.dir, "sa.key"), filepath.Join(c.dir, "sa.pub")
	for _, args := range [][]string{{"genrsa", "-out", key, "2048"}, {"rsa", "-in", key, "-pubout", "-out", pub}} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("kubetest: openssl %s: %v\n%s", args[0], err, out)
		}
	}
	var csv strings.Builder
	for i, u := range append([]string{"admin"}, users...) {
		tok := fmt.Sprintf("kubetest-%d-%s", i, rand.Text())
		c.tokens[u] = tok
		groups := ""
		if u == "admin" {
			groups = ",system:masters"
		}
		fmt.Fprintf(&csv, "%s,%s,%s%s\n", tok, u, u, groups)
	}
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.port = ports[2]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(c.port)
	c.CAFile = filepath.Join(c.dir, "certs", "apiserver.crt")
	c.apiArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pub, "--service-account-signing-key-file=" + key,
		"--token-auth-file=" + tokens, "--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--profiling=false", "--v=1",
	}
	c.apiArgs = append(c.apiArgs, o.APIServerFlags...)
	c.StartAPIServer()
	cfg := c.RESTConfig("admin")
	c.Core = corev1client.NewForConfigOrDie(cfg)
	c.Discovery = discoveryv1client.NewForConfigOrDie(cfg)
	c.RBAC = rbacv1client.NewForConfigOrDie(cfg)
	c.authz = authorizationv1client.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	_, err = c.Core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: creating namespace default: %v", err)
	}
	return c
}

// Token returns the bearer token of user.
func (c *Cluster) Token(user string) string {
	tok, ok := c.tokens[user]
	if !ok {
		c.t.Fatalf("kubetest: no user %q (name it to Start)", user)
	}
	return tok
}

// RESTConfig is a client configuration for user.
func (c *Cluster) RESTConfig(user string) *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: c.Token(user), TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}, Timeout: 30 * time.Second}
}

// Kubeconfig writes a kubeconfig file for user (namespace ns, "" for none)
// and returns its path.
func (c *Cluster) Kubeconfig(user, ns string) string {
	c.t.Helper()
	nsLine := ""
	if ns != "" {
		nsLine = "\n    namespace: " + ns
	}
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: %s%s
current-context: kubetest
`, c.URL, c.CAFile, user, c.Token(user), user, nsLine)
	path := filepath.Join(c.t.TempDir(), user+".kubeconfig")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// ServiceAccountDir writes what the kubelet mounts in a pod (token,
// ca.crt, namespace) for user and returns the directory.
func (c *Cluster) ServiceAccountDir(user, ns string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		c.t.Fatal(err)
	}
	for name, data := range map[string][]byte{"token": []byte(c.Token(user)), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			c.t.Fatal(err)
		}
	}
	return dir
}

// Port is the API server's port (what KUBERNETES_SERVICE_PORT holds in a
// pod).
func (c *Cluster) Port() int { return c.port }

// Grant gives user the verbs on resource of apiGroup in namespace ns,
// through a Role and a RoleBinding named after the user.
func (c *Cluster) Grant(user, ns, apiGroup, resource string, verbs ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "kubetest-" + user
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{apiGroup}, Resources: []string{resource}, Verbs: verbs}}}
	if _, err := c.RBAC.Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("kubetest: role %s: %v", name, err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	if _, err := c.RBAC.RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("kubetest: rolebinding %s: %v", name, err)
	}
	// The authorizer learns of new roles through its own watch: return once
	// it allows every verb, so callers never race it.
	for _, verb := range verbs {
		for {
			r, err := c.authz.SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: apiGroup, Resource: resource},
			}}, metav1.CreateOptions{})
			if err == nil && r.Status.Allowed {
				break
			}
			if ctx.Err() != nil {
				c.t.Fatalf("kubetest: %s may still not %s %s after the grant: %v", user, verb, resource, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// StartAPIServer starts the API server (again) on its port and waits until
// it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	p, err := startProc("kube-apiserver", filepath.Join(c.dir, "kube-apiserver.log"), c.bin, c.apiArgs...)
	if err != nil {
		c.t.Fatalf("kubetest: %v", err)
	}
	c.mu.Lock()
	c.api = p
	c.mu.Unlock()
	if err := c.waitReady(p); err != nil {
		c.t.Logf("kubetest: kube-apiserver log tail:\n%s", tail(p.log))
		c.t.Fatalf("kubetest: kube-apiserver not ready: %v", err)
	}
}

// StopAPIServer stops the API server (SIGTERM, SIGKILL after 10s); etcd
// keeps running.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	p := c.api
	c.api = nil
	c.mu.Unlock()
	c.stop(p)
}

// KillAPIServer kills the API server (SIGKILL: an outage, with no
// graceful end of the watches); etcd keeps running.
func (c *Cluster) KillAPIServer() {
	c.mu.Lock()
	p := c.api
	c.api = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		c.t.Errorf("kubetest: kube-apiserver (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// Stop stops the API server and etcd. It is a no-op for what is not
// running.
func (c *Cluster) Stop() {
	c.StopAPIServer()
	c.stop(c.etcd)
	c.etcd = nil
}

func (c *Cluster) stop(p *proc) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	t.Reset(stopTimeout)
	select {
	case <-p.done:
	case <-t.C:
		c.t.Errorf("kubetest: %s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// waitReady polls /readyz until it answers ok.
func (c *Cluster) waitReady(p *proc) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return errors.New("the process exited")
		default:
		}
		if last = c.readyz(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func (c *Cluster) readyz() error {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in " + c.CAFile)
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+c.tokens["admin"])
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// tail is the end of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 8 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// freePorts asks the kernel for n distinct loopback ports; all are held
// until every one is chosen.
func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
