package nacostest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	auto "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
)

const waitTimeout = 10 * time.Second

// rawConn is a protocol-level client: one gRPC connection carrying unary
// requests and the bi-stream, as the SDK uses it.
type rawConn struct {
	t       *testing.T
	cc      *grpc.ClientConn
	req     auto.RequestClient
	stream  auto.BiRequestStream_RequestBiStreamClient
	cancel  context.CancelFunc
	pushes  chan *auto.Payload
	done    chan struct{}
	headers map[string]string
	connID  string
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(s.GRPCPort()), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := &rawConn{t: t, cc: cc, req: auto.NewRequestClient(cc), pushes: make(chan *auto.Payload, 64), done: make(chan struct{}), headers: map[string]string{}}
	t.Cleanup(c.close)
	return c
}

// setUp does what the SDK does on connect: server check, bi-stream,
// connection setup.
func (c *rawConn) setUp(s *Server) {
	c.t.Helper()
	before := s.Connections()
	var check rpc_response.ServerCheckResponse
	if typ := c.call(rpc_request.NewServerCheckRequest(), &check); typ != "ServerCheckResponse" || check.ConnectionId == "" {
		c.t.Fatalf("server check: %s %+v", typ, check)
	}
	c.connID = check.ConnectionId
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	stream, err := auto.NewBiRequestStreamClient(c.cc).RequestBiStream(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	c.stream = stream
	go func() {
		defer close(c.done)
		for {
			p, err := stream.Recv()
			if err != nil {
				return
			}
			c.pushes <- p
		}
	}()
	setup := rpc_request.NewConnectionSetupRequest()
	setup.ClientVersion = "test"
	if err := stream.Send(payload(setup.GetRequestType(), setup, nil)); err != nil {
		c.t.Fatal(err)
	}
	poll(c.t, "connection registered", func() bool { return s.Connections() == before+1 })
	if ids := s.ConnectionIDs(); !slices.Contains(ids, c.connID) {
		c.t.Errorf("connection ids %v lack the server check's %q", ids, c.connID)
	}
}

func (c *rawConn) close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
	_ = c.cc.Close()
}

func payload(typ string, body any, headers map[string]string) *auto.Payload {
	b, _ := json.Marshal(body)
	return &auto.Payload{Metadata: &auto.Metadata{Type: typ, Headers: headers, ClientIp: "127.0.0.1"}, Body: &anypb.Any{Value: b}}
}

type typedRequest interface{ GetRequestType() string }

// call sends a unary request and decodes the answer into out (when the
// type is the expected one); it returns the answer's type.
func (c *rawConn) call(req typedRequest, out any) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p, err := c.req.Request(ctx, payload(req.GetRequestType(), req, c.headers))
	if err != nil {
		c.t.Fatalf("%s: %v", req.GetRequestType(), err)
	}
	typ := p.GetMetadata().GetType()
	if out != nil && typ != "ErrorResponse" {
		if err := json.Unmarshal(p.GetBody().GetValue(), out); err != nil {
			c.t.Fatal(err)
		}
	}
	if typ == "ErrorResponse" {
		if e, ok := out.(*rpc_response.ErrorResponse); ok {
			_ = json.Unmarshal(p.GetBody().GetValue(), e)
		}
	}
	return typ
}

func (c *rawConn) mustOK(req typedRequest) {
	c.t.Helper()
	var e rpc_response.ErrorResponse
	e.Response = &rpc_response.Response{}
	if typ := c.call(req, &e); typ == "ErrorResponse" {
		c.t.Fatalf("%s: error %d %s", req.GetRequestType(), e.ErrorCode, e.Message)
	}
}

// push waits for the next NotifySubscriberRequest and acks it.
func (c *rawConn) push() rpc_request.NotifySubscriberRequest {
	c.t.Helper()
	select {
	case p := <-c.pushes:
		if typ := p.GetMetadata().GetType(); typ != "NotifySubscriberRequest" {
			c.t.Fatalf("pushed %s", typ)
		}
		var req rpc_request.NotifySubscriberRequest
		if err := json.Unmarshal(p.GetBody().GetValue(), &req); err != nil {
			c.t.Fatal(err)
		}
		ack := &rpc_response.NotifySubscriberResponse{Response: &rpc_response.Response{ResultCode: 200, Success: true, RequestId: req.RequestId}}
		if err := c.stream.Send(payload(ack.GetResponseType(), ack, nil)); err != nil {
			c.t.Fatal(err)
		}
		return req
	case <-time.After(waitTimeout):
		c.t.Fatal("no push")
	}
	return rpc_request.NotifySubscriberRequest{}
}

func (c *rawConn) noPush(d time.Duration) {
	c.t.Helper()
	select {
	case p := <-c.pushes:
		c.t.Fatalf("unexpected push %s", p.GetBody().GetValue())
	case <-time.After(d):
	}
}

func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		<-tick.C
	}
}

func testInst(port uint64, cluster string) model.Instance {
	return model.Instance{Ip: "127.0.0.1", Port: port, Weight: 1, Healthy: true, Enable: true, Ephemeral: true,
		ClusterName: cluster, Metadata: map[string]string{"k": "v"}}
}

func ports(svc model.Service) []uint64 {
	var out []uint64
	for _, h := range svc.Hosts {
		out = append(out, h.Port)
	}
	slices.Sort(out)
	return out
}

func TestProtocol(t *testing.T) {
	s := Start(t)
	sub, pub := dialRaw(t, s), dialRaw(t, s)

	// Before its stream is set up a connection is unregistered.
	var e rpc_response.ErrorResponse
	e.Response = &rpc_response.Response{}
	if typ := sub.call(rpc_request.NewHealthCheckRequest(), &e); typ != "ErrorResponse" || e.ErrorCode != 301 {
		t.Fatalf("request before setup: %s %+v", typ, e.Response)
	}
	sub.setUp(s)
	pub.setUp(s)
	sub.mustOK(rpc_request.NewHealthCheckRequest())

	var sr rpc_response.SubscribeServiceResponse
	sub.call(rpc_request.NewSubscribeServiceRequest("", "web", "", "", true), &sr)
	if sr.ServiceInfo.Name != "web" || sr.ServiceInfo.GroupName != DefaultGroup || len(sr.ServiceInfo.Hosts) != 0 || sr.ServiceInfo.LastRefTime == 0 {
		t.Fatalf("subscribe answer %+v", sr.ServiceInfo)
	}
	// Subscribing again is idempotent.
	sub.call(rpc_request.NewSubscribeServiceRequest("public", "web", DefaultGroup, "", true), &sr)
	if n := s.Subscribers(ServiceKey{Service: "web"}); n != 1 {
		t.Fatalf("%d subscribers", n)
	}
	last := sr.ServiceInfo.LastRefTime

	next := func(what string, want ...uint64) model.Service {
		t.Helper()
		p := sub.push()
		info := p.ServiceInfo
		if info.Name != "web" || info.GroupName != DefaultGroup || p.ServiceName != "web" {
			t.Fatalf("%s: pushed %+v", what, info)
		}
		if info.LastRefTime <= last {
			t.Fatalf("%s: lastRefTime %d not after %d", what, info.LastRefTime, last)
		}
		last = info.LastRefTime
		if got := ports(info); !slices.Equal(got, want) {
			t.Fatalf("%s: pushed ports %v, want %v", what, got, want)
		}
		return info
	}

	pub.mustOK(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "registerInstance", testInst(8001, "")))
	info := next("register", 8001)
	h := info.Hosts[0]
	if h.ClusterName != DefaultCluster || !h.Ephemeral || h.ServiceName != "DEFAULT_GROUP@@web" || h.InstanceId == "" || h.Metadata["k"] != "v" {
		t.Errorf("pushed host %+v", h)
	}
	poll(t, "ack", func() bool { _, acks := s.Pushes(); return acks >= 1 })

	// The SDK's redo re-sends registrations: no change, no push.
	pub.mustOK(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "registerInstance", testInst(8001, "")))
	sub.noPush(100 * time.Millisecond)

	// One registration per service per connection: a new one replaces it.
	pub.mustOK(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "registerInstance", testInst(8002, "blue")))
	next("replace", 8002)
	pub.mustOK(rpc_request.NewBatchInstanceRequest("", "web", DefaultGroup, "batchRegisterInstance",
		[]model.Instance{testInst(8003, "a"), testInst(8004, "b")}))
	next("batch", 8003, 8004)
	if got := s.Instances("", "", "web"); len(got) != 2 || got[0].ConnectionID != pub.connID {
		t.Errorf("instances %+v", got)
	}

	// Hooks push too; pushes leave disabled instances out.
	if err := s.SetEnabled(ServiceKey{Service: "web"}, "127.0.0.1:8003", false); err != nil {
		t.Fatal(err)
	}
	next("disable", 8004)
	if err := s.SetHealthy(ServiceKey{Service: "web"}, "127.0.0.1:8004", false); err != nil {
		t.Fatal(err)
	}
	if info := next("unhealthy", 8004); info.Hosts[0].Healthy {
		t.Error("instance still healthy")
	}
	if err := s.SetWeight(ServiceKey{Service: "web"}, "127.0.0.1:8004", 0.5); err != nil {
		t.Fatal(err)
	}
	if info := next("weight", 8004); info.Hosts[0].Weight != 0.5 {
		t.Errorf("weight %v", info.Hosts[0].Weight)
	}
	if err := s.SetWeight(ServiceKey{Service: "web"}, "127.0.0.1:9999", 1); err == nil {
		t.Error("SetWeight of an unknown instance succeeded")
	}

	// Subscribe answers include disabled instances; queries do not.
	sub.call(rpc_request.NewSubscribeServiceRequest("", "web", DefaultGroup, "", true), &sr)
	if got := ports(sr.ServiceInfo); !slices.Equal(got, []uint64{8003, 8004}) {
		t.Errorf("subscribe answer ports %v", got)
	}
	var qr rpc_response.QueryServiceResponse
	pub.call(rpc_request.NewServiceQueryRequest("", "web", DefaultGroup, "", false, 0), &qr)
	if got := ports(qr.ServiceInfo); !slices.Equal(got, []uint64{8004}) {
		t.Errorf("query ports %v", got)
	}
	pub.call(rpc_request.NewServiceQueryRequest("", "web", DefaultGroup, "", true, 0), &qr)
	if len(qr.ServiceInfo.Hosts) != 0 {
		t.Errorf("healthy-only query: %+v", qr.ServiceInfo.Hosts)
	}
	pub.call(rpc_request.NewServiceQueryRequest("", "web", DefaultGroup, "a", false, 0), &qr)
	if len(qr.ServiceInfo.Hosts) != 0 || qr.ServiceInfo.Clusters != "a" {
		t.Errorf("cluster query: %+v", qr.ServiceInfo)
	}
	var lr rpc_response.ServiceListResponse
	pub.call(rpc_request.NewServiceListRequest("", "", DefaultGroup, 1, 10, ""), &lr)
	if lr.Count != 1 || !slices.Equal(lr.ServiceNames, []string{"web"}) {
		t.Errorf("service list %+v", lr)
	}

	// Invalid cluster names are refused as Nacos does.
	e = rpc_response.ErrorResponse{Response: &rpc_response.Response{}}
	if typ := pub.call(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "registerInstance", testInst(8005, "a_b")), &e); typ != "ErrorResponse" || e.ErrorCode != 400 {
		t.Errorf("bad cluster: %s %+v", typ, e.Response)
	}

	// Deregistering removes the connection's registration.
	pub.mustOK(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "deregisterInstance", testInst(8003, "a")))
	next("deregister")
	pub.mustOK(rpc_request.NewInstanceRequest("", "web", DefaultGroup, "registerInstance", testInst(8006, "")))
	next("register again", 8006)

	// Ephemeral instances vanish with their connection.
	pub.close()
	next("connection closed")
	poll(t, "connection gone", func() bool { return s.Connections() == 1 })

	// Dropped connections see their stream end; their calls are refused.
	if n := s.DropConnections(); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	select {
	case <-sub.done:
	case <-time.After(waitTimeout):
		t.Fatal("stream not ended")
	}
	e = rpc_response.ErrorResponse{Response: &rpc_response.Response{}}
	if typ := sub.call(rpc_request.NewHealthCheckRequest(), &e); typ != "ErrorResponse" || e.ErrorCode != 301 {
		t.Fatalf("request after drop: %s %+v", typ, e.Response)
	}
	if n := s.Subscribers(ServiceKey{Service: "web"}); n != 0 {
		t.Errorf("%d subscribers after drop", n)
	}
}

func TestClusterSubscription(t *testing.T) {
	s := Start(t)
	sub, pub1, pub2 := dialRaw(t, s), dialRaw(t, s), dialRaw(t, s)
	for _, c := range []*rawConn{sub, pub1, pub2} {
		c.setUp(s)
	}
	var sr rpc_response.SubscribeServiceResponse
	sub.call(rpc_request.NewSubscribeServiceRequest("dev", "api", "g", "a,b", true), &sr)
	if sr.ServiceInfo.Clusters != "a,b" || sr.ServiceInfo.GroupName != "g" {
		t.Fatalf("subscribe answer %+v", sr.ServiceInfo)
	}
	pub1.mustOK(rpc_request.NewInstanceRequest("dev", "api", "g", "registerInstance", testInst(8101, "a")))
	if p := sub.push(); !slices.Equal(ports(p.ServiceInfo), []uint64{8101}) || p.ServiceInfo.Clusters != "a,b" || p.Namespace != "dev" {
		t.Fatalf("push %+v", p)
	}
	// Another cluster: the service changed, the subscriber's view did not.
	pub2.mustOK(rpc_request.NewInstanceRequest("dev", "api", "g", "registerInstance", testInst(8102, "c")))
	if p := sub.push(); !slices.Equal(ports(p.ServiceInfo), []uint64{8101}) {
		t.Fatalf("push %+v", p)
	}
	// Other namespaces and groups are separate services.
	if got := s.Instances("public", "g", "api"); len(got) != 0 {
		t.Errorf("public namespace: %+v", got)
	}
	if got := s.Instances("dev", "g", "api"); len(got) != 2 {
		t.Errorf("dev namespace: %+v", got)
	}
}

func httpDo(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		u += "?" + form.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPPersistentInstances(t *testing.T) {
	s := Start(t)
	base := "http://" + s.HTTPAddr() + "/nacos/v1/ns/instance"
	sub := dialRaw(t, s)
	sub.setUp(s)
	var sr rpc_response.SubscribeServiceResponse
	sub.call(rpc_request.NewSubscribeServiceRequest("", "db", "g", "", true), &sr)

	// As the SDK's HTTP proxy sends it: grouped name plus groupName.
	reg := url.Values{"serviceName": {"g@@db"}, "groupName": {"g"}, "ip": {"10.0.0.1"}, "port": {"5432"},
		"weight": {"2"}, "enable": {"true"}, "healthy": {"true"}, "ephemeral": {"false"},
		"metadata": {`{"role":"primary"}`}, "clusterName": {"c1"}}
	if code, body := httpDo(t, http.MethodPost, base, reg); code != 200 || body != "ok" {
		t.Fatalf("register: %d %s", code, body)
	}
	if p := sub.push(); len(p.ServiceInfo.Hosts) != 1 || p.ServiceInfo.Hosts[0].Ephemeral || p.ServiceInfo.Hosts[0].Metadata["role"] != "primary" {
		t.Fatalf("push %+v", p.ServiceInfo)
	}

	list := func() model.Service {
		t.Helper()
		code, body := httpDo(t, http.MethodGet, base+"/list", url.Values{"serviceName": {"db"}, "groupName": {"g"}})
		if code != 200 {
			t.Fatalf("list: %d %s", code, body)
		}
		var svc model.Service
		if err := json.Unmarshal([]byte(body), &svc); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	if svc := list(); svc.Name != "g@@db" || len(svc.Hosts) != 1 || svc.Hosts[0].Weight != 2 || svc.Hosts[0].ClusterName != "c1" {
		t.Fatalf("list %+v", svc)
	}

	upd := url.Values{"serviceName": {"g@@db"}, "ip": {"10.0.0.1"}, "port": {"5432"}, "clusterName": {"c1"}, "enabled": {"false"}, "ephemeral": {"false"}}
	if code, body := httpDo(t, http.MethodPut, base, upd); code != 200 {
		t.Fatalf("update: %d %s", code, body)
	}
	sub.push()
	if svc := list(); len(svc.Hosts) != 0 {
		t.Errorf("disabled instance listed: %+v", svc.Hosts)
	}
	upd.Set("port", "1")
	if code, _ := httpDo(t, http.MethodPut, base, upd); code != 400 {
		t.Errorf("update of an unknown instance: %d", code)
	}

	eph := url.Values{"serviceName": {"g@@db"}, "ip": {"10.0.0.2"}, "port": {"5432"}}
	if code, _ := httpDo(t, http.MethodPost, base, eph); code != 400 {
		t.Errorf("ephemeral registration over HTTP: %d, want 400", code)
	}

	// Persistent instances survive a restart; lastRefTime keeps growing.
	s.Restart()
	if got := s.Instances("", "g", "db"); len(got) != 1 || got[0].Ephemeral {
		t.Fatalf("after restart: %+v", got)
	}
	before := list().LastRefTime
	del := url.Values{"serviceName": {"g@@db"}, "ip": {"10.0.0.1"}, "port": {"5432"}, "clusterName": {"c1"}, "ephemeral": {"false"}}
	if code, body := httpDo(t, http.MethodDelete, base, del); code != 200 || body != "ok" {
		t.Fatalf("deregister: %d %s", code, body)
	}
	if svc := list(); len(svc.Hosts) != 0 || svc.LastRefTime <= before {
		t.Errorf("after delete: %+v (lastRefTime before %d)", svc, before)
	}
	if code, body := httpDo(t, http.MethodGet, "http://"+s.HTTPAddr()+"/nacos/v1/ns/operator/metrics", nil); code != 200 || !strings.Contains(body, "UP") {
		t.Errorf("metrics: %d %s", code, body)
	}
}

func TestStopAndRestart(t *testing.T) {
	s := Start(t)
	sub, pub := dialRaw(t, s), dialRaw(t, s)
	sub.setUp(s)
	pub.setUp(s)
	var sr rpc_response.SubscribeServiceResponse
	sub.call(rpc_request.NewSubscribeServiceRequest("", "web", "", "", true), &sr)
	pub.mustOK(rpc_request.NewInstanceRequest("", "web", "", "registerInstance", testInst(8201, "")))
	last := sub.push().ServiceInfo.LastRefTime

	s.Stop()
	if s.Running() {
		t.Fatal("still running")
	}
	for _, c := range []*rawConn{sub, pub} {
		select {
		case <-c.done:
		case <-time.After(waitTimeout):
			t.Fatal("stream survived Stop")
		}
	}
	if got := s.Instances("", "", "web"); len(got) != 0 {
		t.Errorf("ephemeral instances survived Stop: %+v", got)
	}
	if _, err := net.DialTimeout("tcp", s.HTTPAddr(), time.Second); err == nil {
		t.Error("HTTP port still open")
	}
	s.Stop() // idempotent

	s.Restart()
	again := dialRaw(t, s)
	again.setUp(s)
	again.call(rpc_request.NewSubscribeServiceRequest("", "web", "", "", true), &sr)
	if sr.ServiceInfo.LastRefTime <= last || len(sr.ServiceInfo.Hosts) != 0 {
		t.Errorf("after restart: %+v (lastRefTime before %d)", sr.ServiceInfo, last)
	}
}

func TestAuth(t *testing.T) {
	s := Start(t, WithAuth("u", "p"))
	login := "http://" + s.HTTPAddr() + "/nacos/v1/auth/users/login"
	if code, _ := httpDo(t, http.MethodPost, login, url.Values{"username": {"u"}, "password": {"x"}}); code != 403 {
		t.Errorf("wrong password: %d", code)
	}
	code, body := httpDo(t, http.MethodPost, login, url.Values{"username": {"u"}, "password": {"p"}})
	var tok struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int    `json:"tokenTtl"`
	}
	if err := json.Unmarshal([]byte(body), &tok); code != 200 || err != nil || tok.AccessToken == "" || tok.TokenTTL <= 0 {
		t.Fatalf("login: %d %s", code, body)
	}

	c := dialRaw(t, s)
	c.setUp(s)
	c.mustOK(rpc_request.NewHealthCheckRequest())
	e := rpc_response.ErrorResponse{Response: &rpc_response.Response{}}
	if typ := c.call(rpc_request.NewSubscribeServiceRequest("", "web", "", "", true), &e); typ != "ErrorResponse" || e.ErrorCode != 403 {
		t.Fatalf("without token: %s %+v", typ, e.Response)
	}
	c.headers["accessToken"] = tok.AccessToken
	c.mustOK(rpc_request.NewSubscribeServiceRequest("", "web", "", "", true))

	list := "http://" + s.HTTPAddr() + "/nacos/v1/ns/instance/list"
	if code, _ := httpDo(t, http.MethodGet, list, url.Values{"serviceName": {"web"}}); code != 403 {
		t.Errorf("HTTP without token: %d", code)
	}
	if code, _ := httpDo(t, http.MethodGet, list, url.Values{"serviceName": {"web"}, "accessToken": {tok.AccessToken}}); code != 200 {
		t.Errorf("HTTP with token: %d", code)
	}
}

func TestPortOffset(t *testing.T) {
	s := Start(t, WithPortOffset())
	if s.GRPCPort() != s.HTTPPort()+1000 {
		t.Fatalf("ports %d/%d", s.HTTPPort(), s.GRPCPort())
	}
	c := dialRaw(t, s)
	c.setUp(s)
}
