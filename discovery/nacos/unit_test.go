package nacos

import (
	"math"
	"strings"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/outrigger-gw/outrigger/discovery"
)

func TestScaleWeight(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want int
	}{
		{1, 100},
		{0.5, 50},
		{1.234, 123},
		{1.235, 124}, // rounded, not truncated
		{0.001, 1},
		{0.0049, 1}, // rounds to 0, but positive weights stay positive
		{0.015, 2},
		{2.999, 300},
		{655.35, 65535},
		{655.36, 65535},
		{1e12, 65535},
		{math.Inf(1), 65535},
		{0, 0},
		{-1, 0},
		{math.NaN(), 0},
	} {
		if got := ScaleWeight(tc.in); got != tc.want {
			t.Errorf("ScaleWeight(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTargetsFiltering(t *testing.T) {
	src, err := NewSource(NewPool(), SourceConfig{
		Servers:  []string{"127.0.0.1"},
		Service:  "web",
		Clusters: []string{"A", "B"},
		Metadata: map[string]string{"zone": "z1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := func(ip string, port uint64, cluster string, w float64, healthy, enabled bool, md map[string]string) model.Instance {
		return model.Instance{Ip: ip, Port: port, ClusterName: cluster, Weight: w, Healthy: healthy, Enable: enabled, Metadata: md,
			InstanceId: ip + "#" + cluster}
	}
	z1 := map[string]string{"zone": "z1", "v": "1"}
	got := src.targets([]model.Instance{
		in("10.0.0.2", 80, "A", 0.5, true, true, z1),
		in("10.0.0.1", 80, "B", 1.234, true, true, z1),
		in("10.0.0.3", 80, "C", 1, true, true, z1),                          // other cluster
		in("10.0.0.4", 80, "A", 1, false, true, z1),                         // unhealthy
		in("10.0.0.5", 80, "A", 1, true, false, z1),                         // disabled
		in("10.0.0.6", 80, "A", 0, true, true, z1),                          // weight 0
		in("10.0.0.7", 80, "A", 1, true, true, map[string]string{"v": "1"}), // no zone
		in("10.0.0.8", 80, "A", 1, true, true, map[string]string{"zone": "z2"}),
		in("10.0.0.2", 80, "B", 9, true, true, z1), // same address, later cluster: dropped
		in("", 80, "A", 1, true, true, z1),
		in("::1", 81, "A", 0.001, true, true, z1),
	})
	want := []discovery.Target{
		{Addr: "10.0.0.1:80", Weight: 123, Meta: z1},
		{Addr: "10.0.0.2:80", Weight: 50, Meta: z1},
		{Addr: "[::1]:81", Weight: 1, Meta: z1},
	}
	if !equalTargets(got, want) {
		t.Fatalf("targets = %s, want %s", render(discovery.Update{Targets: got}), render(discovery.Update{Targets: want}))
	}
	got[0].Meta["zone"] = "changed"
	if z1["zone"] != "z1" {
		t.Error("targets share the instance's metadata map")
	}
}

func TestNewSourceValidation(t *testing.T) {
	p := NewPool()
	ok := SourceConfig{Servers: []string{"10.0.0.1:8848"}, Service: "web"}
	for name, tc := range map[string]struct {
		pool *Pool
		mod  func(*SourceConfig)
		want string
	}{
		"nil pool":       {nil, func(*SourceConfig) {}, "nil pool"},
		"no service":     {p, func(c *SourceConfig) { c.Service = " " }, "service is required"},
		"grouped name":   {p, func(c *SourceConfig) { c.Service = "g@@web" }, `contains "@@"`},
		"bad group":      {p, func(c *SourceConfig) { c.Group = "a@@b" }, `contains "@@"`},
		"no servers":     {p, func(c *SourceConfig) { c.Servers = nil }, "no servers"},
		"scheme":         {p, func(c *SourceConfig) { c.Servers = []string{"http://x:8848"} }, "without scheme"},
		"bad port":       {p, func(c *SourceConfig) { c.Servers = []string{"x:0"} }, "bad port"},
		"grpc overflow":  {p, func(c *SourceConfig) { c.Servers = []string{"x:65000"} }, "set GRPCPort"},
		"bad grpc port":  {p, func(c *SourceConfig) { c.GRPCPort = 70000 }, "grpc port"},
		"path separator": {p, func(c *SourceConfig) { c.Service = "a/b" }, "path separator"},
	} {
		cfg := ok
		tc.mod(&cfg)
		_, err := NewSource(tc.pool, cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// A large port is fine with an explicit gRPC port.
	if _, err := NewSource(p, SourceConfig{Servers: []string{"x:65000"}, GRPCPort: 9848, Service: "web"}); err != nil {
		t.Errorf("explicit gRPC port: %v", err)
	}
}

func TestSourceName(t *testing.T) {
	p := NewPool()
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Servers: []string{"x"}, Service: "web"}, "nacos:DEFAULT_GROUP@@web"},
		{SourceConfig{Servers: []string{"x"}, Service: "web", Namespace: "public"}, "nacos:DEFAULT_GROUP@@web"},
		{SourceConfig{Servers: []string{"x"}, Service: "web", Group: "g1", Namespace: "dev"}, "nacos:g1@@web@dev"},
	} {
		s, err := NewSource(p, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name() != tc.want {
			t.Errorf("Name() = %q, want %q", s.Name(), tc.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	a, err := connConfig{Servers: []string{"b:8848", "a"}, Namespace: ""}.key()
	if err != nil {
		t.Fatal(err)
	}
	b, err := connConfig{Servers: []string{"a:8848", "b:8848", "a:8848"}, Namespace: "public"}.key()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("same servers and namespace, different keys: %+v, %+v", a, b)
	}
	c, _ := connConfig{Servers: []string{"a", "b"}, Username: "u", Password: "p"}.key()
	if c == a {
		t.Error("credentials are not part of the key")
	}
	scs := a.serverConfigs()
	if len(scs) != 2 || scs[0].IpAddr != "a" || scs[0].Port != 8848 || scs[0].GrpcPort != 9848 || scs[0].ContextPath != "/nacos" {
		t.Errorf("server configs: %+v", scs)
	}
	d, _ := connConfig{Servers: []string{"[::1]:8848"}, GRPCPort: 7000}.key()
	if scs := d.serverConfigs(); scs[0].IpAddr != "::1" || scs[0].GrpcPort != 7000 {
		t.Errorf("server configs: %+v", scs)
	}
}

func TestNewRegistrarValidation(t *testing.T) {
	p := NewPool()
	ok := RegistrationConfig{Servers: []string{"x"}, Service: "web", IP: "10.0.0.1", Port: 80}
	for name, tc := range map[string]struct {
		mod  func(*RegistrationConfig)
		want string
	}{
		"no service":   {func(c *RegistrationConfig) { c.Service = "" }, "service is required"},
		"no ip":        {func(c *RegistrationConfig) { c.IP = "" }, "ip is required"},
		"bad port":     {func(c *RegistrationConfig) { c.Port = 0 }, "port 0"},
		"neg weight":   {func(c *RegistrationConfig) { c.Weight = -1 }, "weight"},
		"huge weight":  {func(c *RegistrationConfig) { c.Weight = 10001 }, "weight"},
		"nan weight":   {func(c *RegistrationConfig) { c.Weight = math.NaN() }, "weight"},
		"bad cluster":  {func(c *RegistrationConfig) { c.Cluster = "a_b" }, "cluster"},
		"grouped name": {func(c *RegistrationConfig) { c.Service = "g@@s" }, `"@@"`},
	} {
		cfg := ok
		tc.mod(&cfg)
		_, err := NewRegistrar(p, cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	r, err := NewRegistrar(p, ok)
	if err != nil {
		t.Fatal(err)
	}
	in := r.instance()
	if in.Weight != 1 || in.ClusterName != "DEFAULT" || !in.Ephemeral || !in.Healthy || !in.Enable || in.Metadata == nil {
		t.Errorf("defaults: %+v", in)
	}
	if r.cfg.Group != DefaultGroup || r.cfg.Namespace != DefaultNamespace {
		t.Errorf("defaults: group %q namespace %q", r.cfg.Group, r.cfg.Namespace)
	}
}
