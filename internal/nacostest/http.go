package nacostest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
)

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/nacos/v1/ns/instance", s.httpInstance)
	mux.HandleFunc("GET /nacos/v1/ns/instance/list", s.httpInstanceList)
	mux.HandleFunc("POST /nacos/v1/auth/users/login", s.httpLogin)
	mux.HandleFunc("GET /nacos/v1/ns/operator/metrics", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"status": "UP"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte("caused: " + msg + ";"))
}

// httpKey reads namespaceId, groupName and serviceName (which may be
// grouped, "group@@service", as the SDK sends it).
func httpKey(r *http.Request) (ServiceKey, bool) {
	name := r.Form.Get("serviceName")
	group, svc := splitGroupedName(name, r.Form.Get("groupName"))
	k := ServiceKey{Namespace: r.Form.Get("namespaceId"), Group: group, Service: svc}.norm()
	return k, k.Service != ""
}

func boolParam(r *http.Request, name string, def bool) bool {
	if v := r.Form.Get(name); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// metadataParam accepts JSON (what the SDK sends) or "k=v,k2=v2".
func metadataParam(v string) (map[string]string, bool) {
	if strings.TrimSpace(v) == "" {
		return nil, true
	}
	md := map[string]string{}
	if err := json.Unmarshal([]byte(v), &md); err == nil {
		return md, true
	}
	md = map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, false
		}
		md[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return md, true
}

func (s *Server) httpAuth(w http.ResponseWriter, r *http.Request) bool {
	if err := s.checkToken(r.Form.Get("accessToken")); err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return false
	}
	return true
}

// httpInstance serves POST (register), PUT (update) and DELETE
// (deregister) of /nacos/v1/ns/instance.
func (s *Server) httpInstance(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.httpAuth(w, r) {
		return
	}
	k, ok := httpKey(r)
	if !ok {
		httpError(w, http.StatusBadRequest, "Param 'serviceName' is required.")
		return
	}
	port, _ := strconv.Atoi(r.Form.Get("port"))
	ip := r.Form.Get("ip")
	cluster := r.Form.Get("clusterName")
	if cluster == "" {
		cluster = r.Form.Get("cluster")
	}
	if cluster == "" {
		cluster = DefaultCluster
	}
	// Nacos's default for v1 registrations is ephemeral.
	ephemeral := boolParam(r, "ephemeral", true)

	switch r.Method {
	case http.MethodPost:
		if ephemeral {
			httpError(w, http.StatusBadRequest, "nacostest: ephemeral instances over HTTP (v1 heartbeats) are not supported; register them over gRPC")
			return
		}
		weight := 1.0
		if v := r.Form.Get("weight"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				httpError(w, http.StatusBadRequest, "bad weight")
				return
			}
			weight = f
		}
		md, ok := metadataParam(r.Form.Get("metadata"))
		if !ok {
			httpError(w, http.StatusBadRequest, "bad metadata")
			return
		}
		in, err := fromModel(model.Instance{
			Ip: ip, Port: uint64(max(port, 0)), Weight: weight, ClusterName: cluster, Metadata: md,
			Healthy: boolParam(r, "healthy", true), Enable: boolParam(r, "enable", boolParam(r, "enabled", true)),
		}, false, "")
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		svc := s.serviceLocked(k)
		replaced := false
		for i, old := range svc.persistent {
			if old.ip == in.ip && old.port == in.port && old.cluster == in.cluster {
				svc.persistent[i], replaced = in, true
			}
		}
		if !replaced {
			svc.persistent = append(svc.persistent, in)
		}
		s.touchLocked(k)
		s.mu.Unlock()
	case http.MethodPut:
		s.mu.Lock()
		found := false
		for _, in := range s.instancesLocked(k) {
			if in.ip != ip || in.port != port || in.cluster != cluster {
				continue
			}
			found = true
			if v := r.Form.Get("weight"); v != "" {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					in.weight = f
				}
			}
			if r.Form.Has("enabled") || r.Form.Has("enable") {
				in.enabled = boolParam(r, "enabled", boolParam(r, "enable", in.enabled))
			}
			if r.Form.Has("metadata") {
				if md, ok := metadataParam(r.Form.Get("metadata")); ok {
					in.metadata = md
				}
			}
		}
		if found {
			s.touchLocked(k)
		}
		s.mu.Unlock()
		if !found {
			httpError(w, http.StatusBadRequest, "instance not found: "+ip+":"+strconv.Itoa(port))
			return
		}
	case http.MethodDelete:
		s.mu.Lock()
		if svc := s.services[k]; svc != nil {
			for i, in := range svc.persistent {
				if in.ip == ip && in.port == port && in.cluster == cluster {
					svc.persistent = append(svc.persistent[:i:i], svc.persistent[i+1:]...)
					s.touchLocked(k)
					break
				}
			}
		}
		s.mu.Unlock()
	default:
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	_, _ = w.Write([]byte("ok"))
}

// httpInstanceList serves GET /nacos/v1/ns/instance/list: enabled
// instances, the name grouped (as Nacos does for v1 clients).
func (s *Server) httpInstanceList(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.httpAuth(w, r) {
		return
	}
	k, ok := httpKey(r)
	if !ok {
		httpError(w, http.StatusBadRequest, "Param 'serviceName' is required.")
		return
	}
	s.mu.Lock()
	info := s.infoLocked(k, r.Form.Get("clusters"), true, boolParam(r, "healthyOnly", false))
	s.mu.Unlock()
	info.Name = groupedName(k.Group, k.Service)
	writeJSON(w, info)
}

// httpLogin serves POST /nacos/v1/auth/users/login.
func (s *Server) httpLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.opts.username != "" &&
		(r.Form.Get("username") != s.opts.username || r.Form.Get("password") != s.opts.password) {
		httpError(w, http.StatusForbidden, "unknown user!")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, map[string]any{"accessToken": tok, "tokenTtl": tokenTTLSeconds, "globalAdmin": false})
}
