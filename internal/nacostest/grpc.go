package nacostest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	auto "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Nacos error codes used in ErrorResponse.
const (
	codeInvalidParam = 400
	codeNoRight      = 403
	codeUnregister   = 301 // connection not (or no longer) registered
	codeNoHandler    = 302
	codeServerError  = 500
)

// typed is a response that knows its payload type.
type typed interface{ GetResponseType() string }

func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func payloadOf(r typed) (*auto.Payload, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return &auto.Payload{
		Metadata: &auto.Metadata{Type: r.GetResponseType(), Headers: map[string]string{}},
		Body:     &anypb.Any{Value: body},
	}, nil
}

// okResp is a success; the caller sets the request id.
func okResp() *rpc_response.Response {
	return &rpc_response.Response{ResultCode: 200, Success: true}
}

func errorResponse(requestID string, code int, msg string) *rpc_response.ErrorResponse {
	return &rpc_response.ErrorResponse{Response: &rpc_response.Response{
		ResultCode: codeServerError, ErrorCode: code, Message: msg, RequestId: requestID,
	}}
}

// codedError carries a Nacos error code.
type codedError struct {
	code int
	msg  string
}

func (e *codedError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &codedError{code: codeInvalidParam, msg: fmt.Sprintf(format, args...)}
}

type unaryHandler struct {
	auto.UnimplementedRequestServer
	s *Server
}

func (h unaryHandler) Request(ctx context.Context, p *auto.Payload) (*auto.Payload, error) {
	if !h.s.Running() {
		return nil, status.Error(codes.Unavailable, "nacostest: server stopping")
	}
	typ := p.GetMetadata().GetType()
	body := p.GetBody().GetValue()
	var head struct {
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal(body, &head)
	resp, err := h.s.handle(peerOf(ctx), typ, p.GetMetadata().GetHeaders(), body)
	if err != nil {
		code := codeServerError
		var ce *codedError
		if errors.As(err, &ce) {
			code = ce.code
		}
		resp = errorResponse(head.RequestID, code, err.Error())
	}
	if r, ok := resp.(interface{ SetRequestId(string) }); ok {
		r.SetRequestId(head.RequestID)
	}
	return payloadOf(resp)
}

// handle answers one unary request.
func (s *Server) handle(peerAddr, typ string, headers map[string]string, body []byte) (typed, error) {
	s.mu.Lock()
	s.requests[typ]++
	s.mu.Unlock()
	if typ == "ServerCheckRequest" {
		s.mu.Lock()
		defer s.mu.Unlock()
		id := s.pending[peerAddr]
		if c := s.byPeer[peerAddr]; c != nil {
			id = c.id
		}
		if id == "" {
			id = s.newConnIDLocked(peerAddr)
			s.pending[peerAddr] = id
		}
		return &rpc_response.ServerCheckResponse{Response: okResp(), ConnectionId: id}, nil
	}

	s.mu.Lock()
	c := s.byPeer[peerAddr]
	s.mu.Unlock()
	if c == nil {
		return nil, &codedError{code: codeUnregister, msg: "Connection is unregistered."}
	}
	if typ == "HealthCheckRequest" {
		return &rpc_response.HealthCheckResponse{Response: okResp()}, nil
	}
	if err := s.checkToken(headers["accessToken"]); err != nil {
		return nil, err
	}

	switch typ {
	case "InstanceRequest":
		var req rpc_request.InstanceRequest
		if err := json.Unmarshal(body, &req); err != nil || req.NamingRequest == nil {
			return nil, invalid("bad InstanceRequest: %v", err)
		}
		k, err := keyOf(req.NamingRequest)
		if err != nil {
			return nil, err
		}
		return &rpc_response.InstanceResponse{Response: okResp()}, s.instanceOp(c, k, req.Type, []model.Instance{req.Instance})
	case "BatchInstanceRequest":
		var req rpc_request.BatchInstanceRequest
		if err := json.Unmarshal(body, &req); err != nil || req.NamingRequest == nil {
			return nil, invalid("bad BatchInstanceRequest: %v", err)
		}
		k, err := keyOf(req.NamingRequest)
		if err != nil {
			return nil, err
		}
		return &rpc_response.BatchInstanceResponse{Response: okResp()}, s.instanceOp(c, k, req.Type, req.Instances)
	case "SubscribeServiceRequest":
		var req rpc_request.SubscribeServiceRequest
		if err := json.Unmarshal(body, &req); err != nil || req.NamingRequest == nil {
			return nil, invalid("bad SubscribeServiceRequest: %v", err)
		}
		k, err := keyOf(req.NamingRequest)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.closed {
			return nil, &codedError{code: codeUnregister, msg: "Connection is unregistered."}
		}
		// Nacos answers the raw data (disabled instances included).
		info := s.infoLocked(k, req.Clusters, false, false)
		if req.Subscribe {
			c.subs[k] = req.Clusters
		} else {
			delete(c.subs, k)
		}
		return &rpc_response.SubscribeServiceResponse{Response: okResp(), ServiceInfo: info}, nil
	case "ServiceQueryRequest":
		var req rpc_request.ServiceQueryRequest
		if err := json.Unmarshal(body, &req); err != nil || req.NamingRequest == nil {
			return nil, invalid("bad ServiceQueryRequest: %v", err)
		}
		k, err := keyOf(req.NamingRequest)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		info := s.infoLocked(k, req.Cluster, true, req.HealthyOnly)
		return &rpc_response.QueryServiceResponse{Response: okResp(), ServiceInfo: info}, nil
	case "ServiceListRequest":
		var req rpc_request.ServiceListRequest
		if err := json.Unmarshal(body, &req); err != nil || req.NamingRequest == nil {
			return nil, invalid("bad ServiceListRequest: %v", err)
		}
		names, count := s.serviceList(req.Namespace, req.GroupName, req.PageNo, req.PageSize)
		return &rpc_response.ServiceListResponse{Response: okResp(), Count: count, ServiceNames: names}, nil
	}
	return nil, &codedError{code: codeNoHandler, msg: "RequestHandler Not Found: " + typ}
}

func keyOf(r *rpc_request.NamingRequest) (ServiceKey, error) {
	k := ServiceKey{Namespace: r.Namespace, Group: r.GroupName, Service: r.ServiceName}.norm()
	if k.Service == "" {
		return k, invalid("serviceName is empty")
	}
	if strings.Contains(k.Service, "@@") || strings.Contains(k.Group, "@@") {
		return k, invalid("service or group name contains '@@'")
	}
	return k, nil
}

// instanceOp applies a register or deregister from connection c.
func (s *Server) instanceOp(c *conn, k ServiceKey, op string, raw []model.Instance) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return &codedError{code: codeUnregister, msg: "Connection is unregistered."}
	}
	switch op {
	case "registerInstance", "batchRegisterInstance":
		ins := make([]*inst, 0, len(raw))
		for _, r := range raw {
			in, err := fromModel(r, true, c.id)
			if err != nil {
				return invalid("%v", err)
			}
			ins = append(ins, in)
		}
		s.publishLocked(c, k, ins)
		return nil
	case "deregisterInstance":
		s.publishLocked(c, k, nil)
		return nil
	case "batchDeregisterInstance":
		keep := slices.DeleteFunc(slices.Clone(c.pubs[k]), func(in *inst) bool {
			for _, r := range raw {
				if in.ip == r.Ip && in.port == int(r.Port) {
					return true
				}
			}
			return false
		})
		s.publishLocked(c, k, keep)
		return nil
	}
	return invalid("Unsupported request type %s", op)
}

func (s *Server) serviceList(namespace, group string, pageNo, pageSize int) ([]string, int) {
	k := ServiceKey{Namespace: namespace, Group: group}.norm()
	s.mu.Lock()
	var names []string
	for sk := range s.services {
		if sk.Namespace == k.Namespace && sk.Group == k.Group {
			names = append(names, sk.Service)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	count := len(names)
	if pageNo < 1 {
		pageNo = 1
	}
	if pageSize < 1 {
		pageSize = 10
	}
	start := min((pageNo-1)*pageSize, count)
	end := min(start+pageSize, count)
	return slices.Clone(names[start:end]), count
}

type streamHandler struct {
	auto.UnimplementedBiRequestStreamServer
	s *Server
}

// RequestBiStream serves one client connection's stream.
func (h streamHandler) RequestBiStream(stream auto.BiRequestStream_RequestBiStreamServer) error {
	s := h.s
	c := newConn(peerOf(stream.Context()))

	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	s.streams++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.dropConnLocked(c)
		s.streams--
		s.streamsC.Broadcast()
		s.mu.Unlock()
	}()

	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			p, err := stream.Recv()
			if err != nil {
				return
			}
			s.onStream(c, p)
		}
	}()

	ctx := stream.Context()
	for {
		select {
		case p := <-c.out:
			if err := stream.Send(p); err != nil {
				return nil
			}
		case <-c.kill:
			return nil
		case <-recvDone:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// onStream handles a message the client sent on its stream.
func (s *Server) onStream(c *conn, p *auto.Payload) {
	typ := p.GetMetadata().GetType()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return
	}
	switch {
	case typ == "ConnectionSetupRequest":
		if c.setUp {
			return
		}
		c.setUp = true
		c.id = s.pending[c.peer]
		delete(s.pending, c.peer)
		if c.id == "" {
			c.id = s.newConnIDLocked(c.peer)
		}
		s.conns[c.id] = c
		s.byPeer[c.peer] = c
	case strings.HasSuffix(typ, "Response"):
		s.acks++
	}
}

// checkToken verifies an access token when authentication is on.
func (s *Server) checkToken(tok string) error {
	if s.opts.username == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == "" || !s.tokens[tok] {
		return &codedError{code: codeNoRight, msg: "user not found!"}
	}
	return nil
}
