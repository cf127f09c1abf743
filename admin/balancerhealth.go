package admin

import (
	"net/http"

	"github.com/outrigger-gw/outrigger/config"
)

// GET /upstreams/{upstream}/health?balancer_health=1: Kong's health of
// the upstream's balancer as a whole, {data: {id, health, details}},
// instead of the list of its targets.

// balancerHealthOut is the data of a balancer_health answer.
type balancerHealthOut struct {
	ID      string         `json:"id"`
	Health  string         `json:"health"` // HEALTHY | UNHEALTHY | HEALTHCHECKS_OFF
	Details balancerDetail `json:"details"`
}

type balancerDetail struct {
	Healthy bool            `json:"healthy"`
	Weight  weightSummary   `json:"weight"`
	Hosts   []balancerHostO `json:"hosts"`
}

type weightSummary struct {
	Total       int `json:"total"`
	Available   int `json:"available"`
	Unavailable int `json:"unavailable"`
}

// balancerHostO is one target as Kong's balancer lists its hosts.
type balancerHostO struct {
	Host       string          `json:"host"`
	Port       int             `json:"port"`
	NodeWeight int             `json:"nodeWeight"`
	Weight     weightSummary   `json:"weight"`
	Addresses  []addressHealth `json:"addresses"`
}

// upstreamHealth serves list unless the query asks for balancer_health.
func (a *api) upstreamHealth(list func(*http.Request) (int, any, error)) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		if !r.URL.Query().Has("balancer_health") {
			return list(r)
		}
		if err := onlyQuery(r, "balancer_health"); err != nil {
			return 0, nil, err
		}
		switch v := r.URL.Query().Get("balancer_health"); v {
		case "1", "true", "":
		case "0", "false":
			q := r.URL.Query()
			q.Del("balancer_health")
			r2 := r.Clone(r.Context())
			r2.URL.RawQuery = q.Encode()
			return list(r2)
		default:
			return 0, nil, invalidOption("balancer_health", "expected 1 or 0, got %q", v)
		}
		w, u, um, err := viewParent(a, r, upstreams)
		if err != nil {
			return 0, nil, err
		}
		out := balancerHealthOut{ID: um.ID, Details: balancerDetail{Hosts: []balancerHostO{}}}
		for _, h := range a.targetsHealth(w, u, um) {
			ws := weightSummary{Total: h.Weight}
			if h.Health == "UNHEALTHY" {
				ws.Unavailable = h.Weight
			} else {
				ws.Available = h.Weight
			}
			host := balancerHostO{NodeWeight: h.Weight, Weight: ws, Addresses: h.Data.Addresses}
			if len(h.Data.Addresses) > 0 {
				host.Host, host.Port = h.Data.Addresses[0].IP, h.Data.Addresses[0].Port
			}
			out.Details.Hosts = append(out.Details.Hosts, host)
			out.Details.Weight.Total += ws.Total
			out.Details.Weight.Available += ws.Available
			out.Details.Weight.Unavailable += ws.Unavailable
		}
		out.Details.Healthy = balancerHealthy(u, out.Details.Weight)
		switch {
		case !checksOn(u):
			out.Health = "HEALTHCHECKS_OFF"
		case out.Details.Healthy:
			out.Health = "HEALTHY"
		default:
			out.Health = "UNHEALTHY"
		}
		return http.StatusOK, map[string]any{"data": out, "next": nil, "node_id": a.nodeID}, nil
	}
}

// balancerHealthy is Kong's rule: the available share of the weight is
// at least the upstream's healthchecks.threshold percent.
func balancerHealthy(u *config.Upstream, w weightSummary) bool {
	if w.Total == 0 {
		return u.Healthchecks.Threshold == 0
	}
	return float64(w.Available)*100/float64(w.Total) >= u.Healthchecks.Threshold
}
