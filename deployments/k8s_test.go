package deployments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Kubernetes objects below hold the fields the manifests use, and are
// decoded strictly: a misspelt field fails the test instead of being
// dropped, as the API server would (kubectl warns, and ignores it).

type objectMeta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type configMap struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
}

type deployment struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxUnavailable int `yaml:"maxUnavailable"`
				MaxSurge       int `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool  `yaml:"enableServiceLinks"`
	SecurityContext               struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      int   `yaml:"runAsUser"`
		RunAsGroup     int   `yaml:"runAsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	InitContainers []k8sContainer `yaml:"initContainers"`
	Containers     []k8sContainer `yaml:"containers"`
	Volumes        []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Projected *projectedVolume `yaml:"projected"`
	} `yaml:"volumes"`
}

// projectedVolume is a projected volume's sources (the service-account
// token volume).
type projectedVolume struct {
	Sources []struct {
		ServiceAccountToken *struct {
			Path              string `yaml:"path"`
			ExpirationSeconds int    `yaml:"expirationSeconds"`
		} `yaml:"serviceAccountToken"`
		ConfigMap *struct {
			Name  string `yaml:"name"`
			Items []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"configMap"`
		DownwardAPI *struct {
			Items []struct {
				Path     string `yaml:"path"`
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"items"`
		} `yaml:"downwardAPI"`
	} `yaml:"sources"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	RestartPolicy   string   `yaml:"restartPolicy"`
	Args            []string `yaml:"args"`
	Env             []envVar `yaml:"env"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		ResourceFieldRef *struct {
			ContainerName string `yaml:"containerName"`
			Resource      string `yaml:"resource"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// decodeStrict decodes every document of a manifest into a new T.
func decodeStrict[T any](t *testing.T, path string) []T {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.KnownFields(true)
	var out []T
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
}

// manifests is the parsed deployments/k8s.
type manifests struct {
	cm  configMap
	dep deployment
	// sidecar is the Outrigger init container, app the web container.
	sidecar, app *k8sContainer
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join("k8s", "kustomization.yaml")), &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Resources, []string{"rbac.yaml", "configmap.yaml", "deployment.yaml"}) {
		t.Fatalf("kustomization resources %v", k.Resources)
	}
	cms := decodeStrict[configMap](t, filepath.Join("k8s", "configmap.yaml"))
	deps := decodeStrict[deployment](t, filepath.Join("k8s", "deployment.yaml"))
	if len(cms) != 1 || cms[0].Kind != "ConfigMap" || cms[0].APIVersion != "v1" {
		t.Fatalf("configmap.yaml: want one v1 ConfigMap, got %+v", cms)
	}
	if len(deps) != 1 || deps[0].Kind != "Deployment" || deps[0].APIVersion != "apps/v1" {
		t.Fatalf("deployment.yaml: want one apps/v1 Deployment")
	}
	m := manifests{cm: cms[0], dep: deps[0]}
	spec := &m.dep.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one init (sidecar) and one main container, got %d and %d", len(spec.InitContainers), len(spec.Containers))
	}
	m.sidecar, m.app = &spec.InitContainers[0], &spec.Containers[0]
	return m
}

// env returns a container's variable as the kubelet would set it in a pod
// with the given downward-API values, and whether it is declared.
func (c *k8sContainer) env(name string, fields map[string]string) (string, bool) {
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		if e.ValueFrom == nil {
			// $(VAR) refers to a variable declared earlier.
			return regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(e.Value, func(m string) string {
				v, _ := c.env(m[2:len(m)-1], fields)
				return v
			}), true
		}
		switch vf := e.ValueFrom; {
		case vf.FieldRef != nil:
			return fields[vf.FieldRef.FieldPath], true
		case vf.SecretKeyRef != nil:
			return "secret:" + vf.SecretKeyRef.Name + "/" + vf.SecretKeyRef.Key, true
		case vf.ResourceFieldRef != nil:
			q := c.Resources.Limits[strings.TrimPrefix(vf.ResourceFieldRef.Resource, "limits.")]
			b, _ := quantityBytes(q)
			return strconv.FormatInt(b, 10), true
		}
		return "", true
	}
	return "", false
}

// podFields are sample downward-API values.
var podFields = map[string]string{
	"metadata.name": "web-7d9f8-abcde",
	"status.podIP":  "10.1.2.3",
	"status.hostIP": "10.0.0.4",
}

// sidecarConfig is the ConfigMap's outrigger.yaml, validated against this
// tree's outrigger with the sidecar's environment.
func (m manifests) sidecarConfig(t *testing.T) ([]byte, map[string]string) {
	t.Helper()
	data, ok := m.cm.Data["outrigger.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no outrigger.yaml", m.cm.Metadata.Name)
	}
	env := map[string]string{}
	for _, e := range m.sidecar.Env {
		env[e.Name], _ = m.sidecar.env(e.Name, podFields)
	}
	// Every ${VAR} without a default must come from the container.
	for _, ref := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(data, -1) {
		if _, ok := env[ref[1]]; !ok {
			t.Errorf("the ConfigMap's config uses ${%s}, which the outrigger container does not set", ref[1])
		}
	}
	return []byte(data), env
}

// quantityBytes parses a Kubernetes memory quantity (plain bytes, or with
// a binary or decimal suffix).
func quantityBytes(q string) (int64, error) {
	suffixes := []struct {
		s string
		m int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}}
	for _, s := range suffixes {
		if n, ok := strings.CutSuffix(q, s.s); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * s.m, err
		}
	}
	return strconv.ParseInt(q, 10, 64)
}

func TestDeploymentRunsOutriggerAsNativeSidecar(t *testing.T) {
	m := loadManifests(t)
	s := m.sidecar
	if s.Name != "outrigger" || !strings.HasPrefix(s.Image, "outrigger:") {
		t.Errorf("init container %q runs %q, want outrigger", s.Name, s.Image)
	}
	if s.RestartPolicy != "Always" {
		t.Errorf("outrigger restartPolicy %q: without Always it is a plain init container that must exit before the app starts", s.RestartPolicy)
	}
	if !slices.Equal(s.Args, []string{"run", "--config", "/etc/outrigger/outrigger.yaml"}) {
		t.Errorf("outrigger args %q", s.Args)
	}
	mounted := false
	for _, vm := range s.VolumeMounts {
		if vm.MountPath != "/etc/outrigger" {
			continue
		}
		mounted = vm.ReadOnly
		for _, v := range m.dep.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && (v.ConfigMap == nil || v.ConfigMap.Name != m.cm.Metadata.Name) {
				t.Errorf("volume %s is not ConfigMap %s", v.Name, m.cm.Metadata.Name)
			}
		}
	}
	if !mounted {
		t.Errorf("ConfigMap %s is not mounted read-only at /etc/outrigger", m.cm.Metadata.Name)
	}
	sel := m.dep.Spec.Selector.MatchLabels
	for k, v := range sel {
		if m.dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
		}
	}
	if len(sel) == 0 {
		t.Error("empty selector")
	}
	if ru := m.dep.Spec.Strategy.RollingUpdate; m.dep.Spec.Strategy.Type != "RollingUpdate" || ru.MaxUnavailable != 0 {
		t.Errorf("strategy %+v: a rollout should not take a serving pod away before its replacement is ready", m.dep.Spec.Strategy)
	}
}

func TestDeploymentProbesUseTheAdminPort(t *testing.T) {
	m := loadManifests(t)
	data, env := m.sidecarConfig(t)
	f := validConfig(t, "configmap.yaml outrigger.yaml", data, env)
	_, adminPort, _ := net.SplitHostPort(f.Admin.Listen)
	s := m.sidecar
	portByName := map[string]string{}
	for _, p := range s.Ports {
		portByName[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	if portByName["admin"] != adminPort {
		t.Fatalf("container port admin = %q, the config's admin listener is %s", portByName["admin"], f.Admin.Listen)
	}
	if host, _, _ := net.SplitHostPort(f.Admin.Listen); host != "0.0.0.0" {
		t.Errorf("admin listens on %s: the kubelet probes the pod IP", f.Admin.Listen)
	}
	if host, _, _ := net.SplitHostPort(f.Proxy.Listen); host != "127.0.0.1" {
		t.Errorf("proxy listens on %s: only the app, on the pod's loopback, should reach it", f.Proxy.Listen)
	}
	check := func(kind string, p *probe, path string) {
		switch {
		case p == nil || p.HTTPGet == nil:
			t.Errorf("outrigger has no HTTP %s probe", kind)
		case p.HTTPGet.Path != path || portByName[p.HTTPGet.Port] != adminPort:
			t.Errorf("%s probe GET %s on port %q, want %s on the admin port %s", kind, p.HTTPGet.Path, p.HTTPGet.Port, path, adminPort)
		}
	}
	check("readiness", s.ReadinessProbe, "/ready")
	check("liveness", s.LivenessProbe, "/health")
	// /ready waits for the app, which the kubelet starts only after the
	// sidecar's startup probe passes: probing /ready there would deadlock.
	check("startup", s.StartupProbe, "/health")
	if m.app.ReadinessProbe == nil || m.app.ReadinessProbe.HTTPGet == nil {
		t.Error("the app has no readiness probe")
	}
	// What outrigger probes to pass the Consul check is the app's port.
	reg := f.Register.Consul
	appPort := strconv.Itoa(m.app.Ports[0].ContainerPort)
	if reg.Check.HealthURL != "http://127.0.0.1:"+appPort+"/health" || strconv.Itoa(reg.Service.Port) != appPort {
		t.Errorf("registers port %d with health_url %s; the app listens on %s", reg.Service.Port, reg.Check.HealthURL, appPort)
	}
	if reg.Service.Address != podFields["status.podIP"] || reg.Service.ID != podFields["metadata.name"] {
		t.Errorf("registers %s at %s, want the pod name at the pod IP", reg.Service.ID, reg.Service.Address)
	}
	if reg.Address != podFields["status.hostIP"]+":8500" {
		t.Errorf("Consul agent at %s, want the node's agent (%s:8500)", reg.Address, podFields["status.hostIP"])
	}
}

func TestDeploymentShutdownBudget(t *testing.T) {
	m := loadManifests(t)
	data, env := m.sidecarConfig(t)
	f := validConfig(t, "configmap.yaml outrigger.yaml", data, env)
	s := m.sidecar
	if s.Lifecycle == nil || s.Lifecycle.PreStop == nil || s.Lifecycle.PreStop.Sleep == nil || s.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Fatal("outrigger has no preStop sleep (there is no shell in the image for an exec hook)")
	}
	preStop := time.Duration(s.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	lameDuck := time.Duration(0)
	if v, ok := m.app.env("DEMO_SHUTDOWN_DELAY", podFields); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		lameDuck = d
	}
	// The app's own drain after its lame duck is bounded by 10s
	// (cmd/demo-service drainTimeout).
	const appDrain = 10 * time.Second
	grace := time.Duration(m.dep.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	need := lameDuck + appDrain + preStop + f.Proxy.DrainTimeout
	t.Logf("grace %s; app lame duck %s + drain <=%s, outrigger preStop %s + drain_timeout %s = %s",
		grace, lameDuck, appDrain, preStop, f.Proxy.DrainTimeout, need)
	if grace <= f.Proxy.DrainTimeout {
		t.Errorf("terminationGracePeriodSeconds %s is not above drain_timeout %s", grace, f.Proxy.DrainTimeout)
	}
	if grace <= need {
		t.Errorf("terminationGracePeriodSeconds %s does not cover the shutdown sequence (%s)", grace, need)
	}
	// The lame duck must outlast one probe of the TTL check (ttl/3), or
	// callers keep routing to the app after it closed its listener.
	if probe := f.Register.Consul.Check.TTL / 3; lameDuck <= probe {
		t.Errorf("DEMO_SHUTDOWN_DELAY %s does not outlast outrigger's probe interval %s", lameDuck, probe)
	}
}

func TestDeploymentSecurityContext(t *testing.T) {
	m := loadManifests(t)
	pod := m.dep.Spec.Template.Spec
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser != 65532 || pod.SecurityContext.RunAsGroup != 65532 {
		t.Errorf("pod securityContext %+v, want runAsNonRoot as 65532:65532 (the images' USER)", pod.SecurityContext)
	}
	if pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("seccompProfile %q", pod.SecurityContext.SeccompProfile.Type)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod automounts its service account token into every container; only outrigger uses it")
	}
	for _, c := range []*k8sContainer{m.sidecar, m.app} {
		sc := c.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("%s securityContext %+v, want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL", c.Name, sc)
		}
	}
	if v, _ := m.sidecar.env("OUTRIGGER_ADMIN_TOKEN", podFields); !strings.HasPrefix(v, "secret:") {
		t.Errorf("OUTRIGGER_ADMIN_TOKEN comes from %q, want a Secret", v)
	}
}

func TestDeploymentResources(t *testing.T) {
	m := loadManifests(t)
	for _, c := range []*k8sContainer{m.sidecar, m.app} {
		req, err := quantityBytes(c.Resources.Requests["memory"])
		if err != nil || req <= 0 || c.Resources.Requests["cpu"] == "" {
			t.Errorf("%s requests %v, want cpu and memory", c.Name, c.Resources.Requests)
			continue
		}
		lim, err := quantityBytes(c.Resources.Limits["memory"])
		if err != nil || lim < req {
			t.Errorf("%s memory limit %q below its request %q", c.Name, c.Resources.Limits["memory"], c.Resources.Requests["memory"])
		}
		if _, ok := c.Resources.Limits["cpu"]; ok {
			t.Errorf("%s has a CPU limit: throttling a proxy adds latency to every request", c.Name)
		}
	}
	if v, ok := m.sidecar.env("GOMEMLIMIT", podFields); !ok || v == "0" {
		t.Errorf("GOMEMLIMIT %q, want the container's memory limit", v)
	}
	// The figure in the comment is the one the test measures against.
	dep := string(readFile(t, filepath.Join("k8s", "deployment.yaml")))
	if !regexp.MustCompile(`peaked at \d+(\.\d+)? MiB`).MatchString(dep) {
		t.Error("deployment.yaml no longer records the measured peak RSS in its resources comment")
	}
}

// memoryRequest is the outrigger container's memory request in bytes.
func (m manifests) memoryRequest(t *testing.T) int64 {
	t.Helper()
	b, err := quantityBytes(m.sidecar.Resources.Requests["memory"])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
