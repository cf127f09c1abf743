package admin

import (
	"net/http"

	"github.com/outrigger-gw/outrigger/upstream"
)

// LayerGenerations count the changes of each layer of the configuration:
// the configuration file (every load that was committed), the admin layer
// (every change of it in force, made here or adopted from the store) and
// the effective configuration (every commit of either).
type LayerGenerations struct {
	File   uint64 `json:"file"`
	Admin  uint64 `json:"admin"`
	Config uint64 `json:"config"`
}

// LayerReporter is implemented by a Controller that tracks layer
// generations. UpstreamLayers returns, for a running upstream, the
// generations that built its spec in force (the last commit that changed
// its targets, balancer, overrides or marks) and the generations now.
type LayerReporter interface {
	UpstreamLayers(name string) (built, now LayerGenerations, ok bool)
}

// upstreamDebugOut is GET /upstreams/{upstream}/debug: what the sidecar
// believes about the upstream, read from its current snapshot.
type upstreamDebugOut struct {
	Upstream string `json:"upstream"`
	// Layers built the upstream's spec; LayersNow are the current ones.
	// Both null when the controller does not track them.
	Layers    *LayerGenerations `json:"layers"`
	LayersNow *LayerGenerations `json:"layers_now"`
	upstream.Debug
}

func (a *api) upstreamDebug(r *http.Request) (int, any, error) {
	cu, _, ok := a.view().upstream(r.PathValue("upstream"))
	if !ok {
		return 0, nil, notFound()
	}
	u := a.ctl.Upstream(cu.Name)
	if u == nil {
		return 0, nil, notFound()
	}
	out := upstreamDebugOut{Upstream: cu.Name, Debug: u.Debug()}
	if lr, ok := a.ctl.(LayerReporter); ok {
		if built, now, ok := lr.UpstreamLayers(cu.Name); ok {
			out.Layers, out.LayersNow = &built, &now
		}
	}
	return http.StatusOK, out, nil
}

// debugSchemas documents the debug view.
func debugSchemas() js {
	ts := js{"type": "string", "format": "date-time"}
	gens := sobj(js{
		"file":   js{"type": "integer", "description": "configuration file loads committed"},
		"admin":  js{"type": "integer", "description": "admin layer changes in force"},
		"config": js{"type": "integer", "description": "effective configuration commits (config_generation of /status)"},
	}, "file", "admin", "config")
	target := sobj(js{
		"target":           sstr("host:port"),
		"source":           sstr("static (the file and the API), or the discovery source, e.g. consul:web"),
		"weight":           js{"type": "integer", "description": "the source's weight"},
		"effective_weight": js{"type": "integer", "description": "the balancer's weight now (override, slow start, shares; 0 when not eligible)"},
		"override":         sstr("ID of the weight override in force"),
		"eligible":         sbool("in the picker"),
		"priority":         js{"type": "integer", "description": "priority group (lowest healthy group gets the traffic)"},
		"locality":         js{"type": "object", "additionalProperties": sstr(""), "description": "region, zone, nodeName and node from the target's metadata"},
		"tags":             sarr(sstr(""), ""),
		"meta":             js{"type": "object", "additionalProperties": sstr(""), "description": "discovery metadata"},
		"health": sobj(js{
			"healthy":        sbool("effective health"),
			"reason":         senum("why the effective health last changed", "initial", "active", "passive", "manual", "ejection-expired", "success-rate"),
			"since":          nullable(ts),
			"checks_healthy": sbool("the checks' own verdict"),
			"mark":           senum("the manual mark in force", "none", "healthy", "unhealthy"),
			"ejected":        sbool("a passive ejection is in force"),
			"ejections":      js{"type": "integer", "description": "recent passive ejections"},
			"ejected_until":  nullable(ts),
			"success_rate": sobj(js{"rate": snum("percent of successes in the last interval judged", 0, 100),
				"requests": js{"type": "integer"}, "threshold": snum("percent under which a target was an outlier; 0: too few targets", -1e9, 100),
				"at": ts}),
		}, "healthy", "reason", "since", "mark", "ejected"),
		"slow_start": nullable(sobj(js{
			"since":  ts,
			"factor": snum("share of its weight the target gets now", 0, 1),
		}, "since", "factor")),
		"in_flight":       js{"type": "integer", "description": "requests being sent to the target now"},
		"requests":        js{"type": "integer", "description": "requests picked for the target"},
		"latency_ewma_ms": nullable(js{"type": "number", "description": "peak latency EWMA; null before the first answer"}),
	}, "target", "source", "weight", "effective_weight", "eligible", "health", "in_flight", "requests")
	return js{
		"UpstreamDebug": sobj(js{
			"upstream":              sstr(""),
			"layers":                nullable(gens),
			"layers_now":            nullable(gens),
			"snapshot_generation":   js{"type": "integer", "description": "increases with every rebuild of the upstream's snapshot"},
			"discovery_generations": js{"type": "object", "additionalProperties": js{"type": "integer"}, "description": "discovery source → target sets that changed it"},
			"panic":                 sbool("panic mode is engaged"),
			"healthy_percent":       js{"type": "number"},
			"targets":               sarr(target, ""),
			"levels": sarr(sobj(js{
				"priority": js{"type": "integer"}, "backup": sbool(""),
				"targets": js{"type": "integer", "description": "weighted targets"}, "healthy": js{"type": "integer"},
				"load":  js{"type": "integer", "description": "percent of requests the level takes"},
				"zones": js{"type": "object", "additionalProperties": js{"type": "integer"}, "description": "zone-aware routing: percent of the level's requests per zone"},
			}), "priority levels, lowest first, backups last"),
		}, "upstream", "snapshot_generation", "discovery_generations", "targets", "levels"),
	}
}
