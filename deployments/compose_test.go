package deployments

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeService is the part of a compose service the tests check.
type composeService struct {
	Image       string            `yaml:"image"`
	PullPolicy  string            `yaml:"pull_policy"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	NetworkMode string            `yaml:"network_mode"`
	Networks    yaml.Node         `yaml:"networks"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
}

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join("compose", "docker-compose.yml")), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return f.Services
}

// aliases returns the networks a service is on and its aliases there
// (networks is a list, or a mapping of network to settings).
func (s composeService) aliases() map[string][]string {
	out := map[string][]string{}
	switch s.Networks.Kind {
	case yaml.SequenceNode:
		for _, n := range s.Networks.Content {
			out[n.Value] = nil
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(s.Networks.Content); i += 2 {
			var settings struct {
				Aliases []string `yaml:"aliases"`
			}
			_ = s.Networks.Content[i+1].Decode(&settings)
			out[s.Networks.Content[i].Value] = settings.Aliases
		}
	}
	return out
}

// composeVar matches compose's ${VAR} and ${VAR:-default} interpolation.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// interpolate applies compose's interpolation with an empty host
// environment: defaults apply, an unset variable without one is an error.
func interpolate(s string) (string, error) {
	var err error
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if !strings.Contains(m, ":-") {
			err = fmt.Errorf("%s has no default", m)
		}
		return sub[2]
	})
	return out, err
}

// TestComposeUsesOnlyLocallyBuiltImages: compose must never pull.
func TestComposeUsesOnlyLocallyBuiltImages(t *testing.T) {
	built := map[string]bool{}
	for _, mk := range makeTargets {
		built[mk.tag+":dev"] = true
	}
	for name, s := range loadCompose(t) {
		if !built[s.Image] {
			t.Errorf("%s: image %q is not one the Makefile builds (%v)", name, s.Image, built)
		}
		if s.PullPolicy != "never" {
			t.Errorf("%s: pull_policy %q, want never", name, s.PullPolicy)
		}
		if !s.ReadOnly || len(s.CapDrop) != 1 || s.CapDrop[0] != "ALL" {
			t.Errorf("%s: read_only %v cap_drop %v, want a read-only root and no capabilities", name, s.ReadOnly, s.CapDrop)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is published beyond 127.0.0.1", name, p)
			}
		}
	}
}

// TestComposeTopology: Consul, two registered web instances and a client
// whose sidecar discovers "web". Each pod is a sidecar on the network
// under the pod's name, owning the network namespace that its application
// joins, and runs a configuration valid for this tree's outrigger with the
// environment compose gives it.
func TestComposeTopology(t *testing.T) {
	services := loadCompose(t)
	if s, ok := services["consul"]; !ok || s.Image != "outrigger-consul:dev" {
		t.Fatalf("no consul service built from this repository: %+v", s)
	}
	registered := map[string][]string{} // Consul service -> instance ids
	discovers := ""
	for name, s := range services {
		if s.Image != "outrigger:dev" {
			continue
		}
		if s.NetworkMode != "" {
			t.Errorf("%s: network_mode %q: the sidecar owns its pod's network namespace", name, s.NetworkMode)
		}
		apps := 0
		for appName, app := range services {
			if app.NetworkMode == "service:"+name {
				apps++
				if app.Image != "outrigger-demo-service:dev" {
					t.Errorf("%s joins %s but runs %s", appName, name, app.Image)
				}
			}
		}
		if apps != 1 {
			t.Errorf("%s: %d applications join its network namespace, want 1", name, apps)
		}
		if len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":/etc/outrigger/outrigger.yaml:ro") {
			t.Errorf("%s: volumes %q, want one configuration mounted read-only at /etc/outrigger/outrigger.yaml", name, s.Volumes)
			continue
		}
		src := strings.SplitN(s.Volumes[0], ":", 2)[0]
		env := map[string]string{}
		for k, v := range s.Environment {
			var err error
			if env[k], err = interpolate(v); err != nil {
				t.Errorf("%s: environment %s: %v", name, k, err)
			}
		}
		f := validConfig(t, name+" ("+src+")", readFile(t, filepath.Join("compose", src)), env)
		for _, l := range []string{f.Proxy.Listen, f.Admin.Listen} {
			if host, _, _ := net.SplitHostPort(l); host != "0.0.0.0" {
				t.Errorf("%s: listens on %s; the other containers cannot reach a container's loopback", name, l)
			}
		}
		if f.Register == nil || f.Register.Consul == nil {
			t.Errorf("%s registers nothing", name)
			continue
		}
		rs := f.Register.Consul.Service
		if !slices.Contains(s.aliases()["mesh"], rs.Address) {
			t.Errorf("%s registers address %q, which is not its alias on the network (%v)", name, rs.Address, s.aliases())
		}
		if f.Register.Consul.Address != "consul:8500" {
			t.Errorf("%s: Consul at %q, want consul:8500", name, f.Register.Consul.Address)
		}
		registered[rs.Name] = append(registered[rs.Name], rs.ID)
		for _, u := range f.Upstreams {
			if u.Discovery != nil && u.Discovery.Consul != nil {
				discovers = u.Discovery.Consul.Service
			}
		}
	}
	if len(registered["web"]) != 2 || registered["web"][0] == registered["web"][1] {
		t.Errorf("web instances registered: %v, want two distinct ids", registered["web"])
	}
	if discovers != "web" {
		t.Errorf("no sidecar discovers the web service through Consul (found %q)", discovers)
	}
}
