package nacostest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	auto "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"google.golang.org/protobuf/types/known/anypb"
)

// inst is one instance record.
type inst struct {
	ip        string
	port      int
	weight    float64
	healthy   bool
	enabled   bool
	ephemeral bool
	cluster   string
	metadata  map[string]string
	connID    string
}

func (in *inst) export() Instance {
	return Instance{
		IP:           in.ip,
		Port:         in.port,
		Weight:       in.weight,
		Healthy:      in.healthy,
		Enabled:      in.enabled,
		Ephemeral:    in.ephemeral,
		Cluster:      in.cluster,
		Metadata:     maps.Clone(in.metadata),
		ConnectionID: in.connID,
	}
}

func (in *inst) model(k ServiceKey) model.Instance {
	md := maps.Clone(in.metadata)
	if md == nil {
		md = map[string]string{}
	}
	grouped := groupedName(k.Group, k.Service)
	return model.Instance{
		InstanceId:  in.ip + "#" + strconv.Itoa(in.port) + "#" + in.cluster + "#" + grouped,
		Ip:          in.ip,
		Port:        uint64(in.port),
		Weight:      in.weight,
		Healthy:     in.healthy,
		Enable:      in.enabled,
		Ephemeral:   in.ephemeral,
		ClusterName: in.cluster,
		ServiceName: grouped,
		Metadata:    md,
	}
}

func (in *inst) equal(o *inst) bool {
	return in.ip == o.ip && in.port == o.port && in.weight == o.weight && in.healthy == o.healthy &&
		in.enabled == o.enabled && in.ephemeral == o.ephemeral && in.cluster == o.cluster &&
		maps.Equal(in.metadata, o.metadata)
}

// fromModel validates and normalizes an instance sent by a client.
func fromModel(m model.Instance, ephemeral bool, connID string) (*inst, error) {
	if m.Ip == "" {
		return nil, fmt.Errorf("instance ip is empty")
	}
	if m.Port < 1 || m.Port > 65535 {
		return nil, fmt.Errorf("instance port %d out of 1..65535", m.Port)
	}
	cluster := m.ClusterName
	if cluster == "" {
		cluster = DefaultCluster
	}
	if !validClusterName(cluster) {
		return nil, fmt.Errorf("Instance 'clusterName' should be characters with only 0-9a-zA-Z-. (current: %s)", cluster)
	}
	if m.Weight < 0 || m.Weight > 10000 {
		return nil, fmt.Errorf("instance weight %v out of 0..10000", m.Weight)
	}
	return &inst{
		ip:        m.Ip,
		port:      int(m.Port),
		weight:    m.Weight,
		healthy:   m.Healthy,
		enabled:   m.Enable,
		ephemeral: ephemeral,
		cluster:   cluster,
		metadata:  maps.Clone(m.Metadata),
		connID:    connID,
	}, nil
}

// validClusterName is Nacos's ^[0-9a-zA-Z-]+$.
func validClusterName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

// service holds what outlives connections: the persistent instances and
// the time of the last change.
type service struct {
	lastRefTime int64
	persistent  []*inst
}

// conn is one client connection (one gRPC transport with its bi-stream).
type conn struct {
	id     string
	peer   string
	out    chan *auto.Payload
	kill   chan struct{}
	once   sync.Once
	closed bool // set under Server.mu when dropped
	setUp  bool
	pubs   map[ServiceKey][]*inst
	subs   map[ServiceKey]string // clusters
}

func newConn(peer string) *conn {
	return &conn{
		peer: peer,
		out:  make(chan *auto.Payload, outQueue),
		kill: make(chan struct{}),
		pubs: map[ServiceKey][]*inst{},
		subs: map[ServiceKey]string{},
	}
}

// close makes the connection's stream handler end the stream.
func (c *conn) close() { c.once.Do(func() { close(c.kill) }) }

// tickLocked returns a new lastRefTime: wall-clock milliseconds, strictly
// greater than every one handed out before.
func (s *Server) tickLocked() int64 {
	now := time.Now().UnixMilli()
	if now <= s.clock {
		now = s.clock + 1
	}
	s.clock = now
	return now
}

func (s *Server) serviceLocked(k ServiceKey) *service {
	svc := s.services[k]
	if svc == nil {
		svc = &service{}
		s.services[k] = svc
	}
	return svc
}

// instancesLocked returns the live records of the service, sorted.
func (s *Server) instancesLocked(k ServiceKey) []*inst {
	var out []*inst
	for _, c := range s.conns {
		out = append(out, c.pubs[k]...)
	}
	if svc := s.services[k]; svc != nil {
		out = append(out, svc.persistent...)
	}
	slices.SortFunc(out, func(a, b *inst) int {
		return cmp.Or(strings.Compare(a.ip, b.ip), cmp.Compare(a.port, b.port),
			strings.Compare(a.cluster, b.cluster), strings.Compare(a.connID, b.connID))
	})
	return out
}

// infoLocked builds the ServiceInfo for clusters (comma-separated, "" for
// all) as of the last change.
func (s *Server) infoLocked(k ServiceKey, clusters string, enabledOnly, healthyOnly bool) model.Service {
	var lastRef int64
	if svc := s.services[k]; svc != nil && svc.lastRefTime > 0 {
		lastRef = svc.lastRefTime
	} else {
		// Nacos answers an unknown service with an empty ServiceInfo
		// stamped with the current time.
		lastRef = s.tickLocked()
	}
	var want []string
	for _, c := range strings.Split(clusters, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want = append(want, c)
		}
	}
	hosts := []model.Instance{}
	for _, in := range s.instancesLocked(k) {
		if len(want) > 0 && !slices.Contains(want, in.cluster) {
			continue
		}
		if enabledOnly && !in.enabled || healthyOnly && !in.healthy {
			continue
		}
		hosts = append(hosts, in.model(k))
	}
	return model.Service{
		CacheMillis: cacheMillis,
		Hosts:       hosts,
		LastRefTime: uint64(lastRef),
		Clusters:    clusters,
		Name:        k.Service,
		GroupName:   k.Group,
		Valid:       true,
	}
}

// touchLocked records a change of the service and pushes it to its
// subscribers.
func (s *Server) touchLocked(k ServiceKey) {
	s.serviceLocked(k).lastRefTime = s.tickLocked()
	if !s.running {
		// A stopping server drops its connections' instances without
		// telling the subscribers still connected: a real Nacos going down
		// pushes nothing, and such a push would make clients drop the
		// instances of registrars whose connections closed first.
		return
	}
	for _, c := range s.conns {
		clusters, ok := c.subs[k]
		if !ok {
			continue
		}
		s.pushLocked(c, k, clusters)
	}
}

func (s *Server) pushLocked(c *conn, k ServiceKey, clusters string) {
	s.seq++
	req := rpc_request.NotifySubscriberRequest{
		NamingRequest: &rpc_request.NamingRequest{
			Request:     &rpc_request.Request{RequestId: strconv.FormatUint(s.seq, 10)},
			Namespace:   k.Namespace,
			ServiceName: k.Service,
			GroupName:   k.Group,
			Module:      "naming",
		},
		// Pushes carry enabled instances only (Nacos's PushExecuteTask).
		ServiceInfo: s.infoLocked(k, clusters, true, false),
	}
	body, err := json.Marshal(&req)
	if err != nil {
		s.tb.Errorf("nacostest: marshal push: %v", err)
		return
	}
	p := &auto.Payload{
		Metadata: &auto.Metadata{Type: req.GetRequestType(), Headers: map[string]string{}},
		Body:     &anypb.Any{Value: body},
	}
	select {
	case c.out <- p:
		s.pushes++
	default:
		// A client that does not read its stream is dropped.
		c.close()
	}
}

// publishLocked replaces the connection's registration for the service.
func (s *Server) publishLocked(c *conn, k ServiceKey, ins []*inst) {
	old := c.pubs[k]
	if slices.EqualFunc(old, ins, (*inst).equal) {
		return
	}
	if len(ins) == 0 {
		delete(c.pubs, k)
	} else {
		c.pubs[k] = ins
	}
	s.touchLocked(k)
}

// dropConnLocked forgets a connection: its ephemeral instances vanish
// (pushed to the remaining subscribers) and its subscriptions end.
func (s *Server) dropConnLocked(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	c.close()
	if c.id != "" && s.conns[c.id] == c {
		delete(s.conns, c.id)
	}
	if s.byPeer[c.peer] == c {
		delete(s.byPeer, c.peer)
	}
	changed := slices.Collect(maps.Keys(c.pubs))
	clear(c.pubs)
	clear(c.subs)
	for _, k := range changed {
		s.touchLocked(k)
	}
}

// newConnIDLocked mimics Nacos's "<millis>_<ip>_<port>".
func (s *Server) newConnIDLocked(peer string) string {
	s.seq++
	return fmt.Sprintf("%d_%s_%d", time.Now().UnixMilli(), strings.ReplaceAll(peer, ":", "_"), s.seq)
}
