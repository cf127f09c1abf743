package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// endpoint is one served route. The table drives both the mux and the
// OpenAPI document.
type endpoint struct {
	method, path string
	op           string // operationId
	tag          string
	summary      string
	in           string // request body schema; "" for none
	out          string // answer schema ("list:X" for a list of X); "" for no body
	ok           int    // success status
	upsert       bool   // PUT that answers 201 when it creates
	paged        bool   // takes size and offset
	tagged       bool   // a paged list that also takes tags
	example      any    // a valid JSON request body (the contract test sends it)
	// needsController: served only with a Controller (503 otherwise).
	needsController bool
	h               func(*http.Request) (int, any, error)
	raw             http.Handler // served as is (metrics)
}

// Path parameter examples: entities the contract test's fixture holds.
const (
	exUpstream = "example_upstream"
	exTarget   = "10.0.0.1:8080"
	exService  = "example_service"
	exRoute    = "example_route"
	exOverride = "0b0e6c0a-4a57-4f43-9b2c-2f6a3c1d9e01"
	exCert     = "5f1e0c9a-3b7d-4e2a-8c61-0d9f4b2a7e13"
	exSNI      = "api.example.com"
	exTag      = "edge"
	exPlugin   = "3c5d7e9f-1a2b-4c6d-8e0f-123456789abc"
	exConsumer = "example_consumer"
	exKeyAuth  = "7d1e3f5a-9b2c-4d6e-8f0a-abcdef012345"
)

// routes is the table of everything the admin listener serves.
func (a *api) routes() []endpoint {
	k, targets, overrides := newKinds(), targetsChild(), overridesChild()
	// ctl marks entity endpoints.
	ctl := func(e endpoint) endpoint { e.needsController = true; return e }
	mark := func(method, state string) endpoint {
		verb := map[string]string{http.MethodPut: "put", http.MethodPost: "post"}[method]
		return ctl(endpoint{method: method, path: "/upstreams/{upstream}/targets/{target}/" + state, op: verb + "Target" + title(state),
			tag: "health", summary: "Mark a target " + state + " (persisted in the admin layer; " + method + " as Kong " + kongVersionOf(method) + ")",
			ok: http.StatusNoContent, h: a.markTarget(state)})
	}
	markAddress := func(method, state string) endpoint {
		verb := map[string]string{http.MethodPut: "put", http.MethodPost: "post"}[method]
		return ctl(endpoint{method: method, path: "/upstreams/{upstream}/targets/{target}/{address}/" + state, op: verb + "TargetAddress" + title(state),
			tag: "health", summary: "Mark one address of a target " + state + " (Kong's per-address form; every target is one address, so this marks the target; 404 unless address is the target's)",
			ok: http.StatusNoContent, h: a.markTarget(state)})
	}
	unmark := func(state string) endpoint {
		return ctl(endpoint{method: http.MethodDelete, path: "/upstreams/{upstream}/targets/{target}/" + state, op: "deleteTarget" + title(state),
			tag: "health", summary: "Clear the target's manual mark, whichever it is (the checks decide again)",
			ok: http.StatusNoContent, h: a.markTarget("none")})
	}
	return append([]endpoint{
		// Status.
		{method: http.MethodGet, path: "/", op: "root", tag: "status", summary: "Welcome: tagline and version", out: "Welcome", ok: http.StatusOK, h: a.root},
		{method: http.MethodGet, path: "/status", op: "getStatus", tag: "status", summary: "Version, uptime and configuration generation", out: "Status", ok: http.StatusOK, h: a.status},
		{method: http.MethodGet, path: "/ready", op: "getReady", tag: "status", summary: "Readiness probe (503 when not ready); needs no token", out: "Ready", ok: http.StatusOK, h: a.ready},
		{method: http.MethodGet, path: "/health", op: "getHealth", tag: "status", summary: "Liveness probe; needs no token", out: "Message", ok: http.StatusOK, h: a.alive},
		{method: http.MethodGet, path: "/metrics", op: "getMetrics", tag: "status", summary: "Prometheus metrics (text exposition format)", out: "text", ok: http.StatusOK, raw: a.metricsHandler()},
		{method: http.MethodGet, path: "/stats/stream", op: "streamStats", tag: "status", summary: "Server-sent events: one \"stats\" frame a second with every upstream's targets (state, in-flight, responses, 5xx) and each service's traffic per upstream (requests, 5xx, latency histogram), cumulative; ?frames=N ends after N frames; 503 over the client bound", out: "events", ok: http.StatusOK, raw: http.HandlerFunc(a.streamStats)},
		{method: http.MethodGet, path: "/openapi.json", op: "getOpenAPI", tag: "status", summary: "This document", out: "object", ok: http.StatusOK, raw: http.HandlerFunc(a.serveSpec)},

		// The admin layer as a whole.
		ctl(endpoint{method: http.MethodGet, path: "/config", op: "getConfig", tag: "status",
			summary: "Export the effective entities as a Kong declarative document (Kong DB-less GET /config: {config: YAML})", out: "DeclarativeConfig", ok: http.StatusOK, h: a.getConfig}),
		ctl(endpoint{method: http.MethodPost, path: "/config", op: "postConfig", tag: "status",
			summary: "Replace the admin layer with a declarative document (Kong DB-less POST /config; JSON, YAML, or a config field); validated whole, nothing applied on error; ?check_hash=1 answers 304 when nothing would change",
			in:      "DeclarativeInput", out: "DeclarativeEntities", ok: http.StatusCreated, example: declarativeExample(), h: a.postConfig}),
		ctl(endpoint{method: http.MethodDelete, path: "/state", op: "resetState", tag: "status",
			summary: "Reset the admin layer: every change made through the admin API is discarded, in the store too (fleet-wide); the configuration file stays in force",
			ok:      http.StatusNoContent, h: a.resetState}),

		// Upstreams.
		ctl(endpoint{method: http.MethodGet, path: "/upstreams", op: "listUpstreams", tag: "upstreams", summary: "List upstreams (the file's and the API's)", out: "list:Upstream", ok: http.StatusOK, paged: true, tagged: true, h: k.upstream.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/upstreams", op: "createUpstream", tag: "upstreams", summary: "Create an upstream", in: "UpstreamInput", out: "Upstream", ok: http.StatusCreated,
			example: map[string]any{"name": "new_upstream", "algorithm": "least-connections", "healthchecks": map[string]any{"active": map[string]any{"http_path": "/health", "healthy": map[string]any{"interval": 5}}}}, h: k.upstream.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}", op: "getUpstream", tag: "upstreams", summary: "Get an upstream", out: "Upstream", ok: http.StatusOK, h: k.upstream.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/upstreams/{upstream}", op: "patchUpstream", tag: "upstreams", summary: "Update an upstream (a file upstream is copied into the admin layer)", in: "UpstreamInput", out: "Upstream", ok: http.StatusOK,
			example: map[string]any{"algorithm": "round-robin", "slots": 1000}, h: k.upstream.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/upstreams/{upstream}", op: "putUpstream", tag: "upstreams", summary: "Create or replace an upstream (its targets are kept)", in: "UpstreamInput", out: "Upstream", ok: http.StatusOK, upsert: true,
			example: map[string]any{"algorithm": "consistent-hashing", "hash_on": "header", "hash_on_header": "X-User"}, h: k.upstream.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/upstreams/{upstream}", op: "deleteUpstream", tag: "upstreams", summary: "Delete an upstream (400 while a service or canary uses it)", ok: http.StatusNoContent, h: k.upstream.del(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/debug", op: "getUpstreamDebug", tag: "health",
			summary: "What the sidecar believes: every target of the live snapshot with source, weights, health reason and since, slow start, in-flight, EWMA, ejection, locality; and the layer generations that built it",
			out:     "UpstreamDebug", ok: http.StatusOK, h: a.upstreamDebug}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/health", op: "getUpstreamHealth", tag: "health", summary: "Health of every target, discovered ones included; with ?balancer_health=1 the balancer's as a whole, Kong's {data: {id, health, details}}", out: "list:TargetHealth", ok: http.StatusOK, paged: true, tagged: true, h: a.upstreamHealth(healthChild().list(a))}),

		// Targets.
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/targets", op: "listTargets", tag: "targets", summary: "List targets: the file's, the API's and discovered ones", out: "list:Target", ok: http.StatusOK, paged: true, tagged: true, h: targets.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/upstreams/{upstream}/targets", op: "createTarget", tag: "targets", summary: "Add a target", in: "TargetInput", out: "Target", ok: http.StatusCreated,
			example: map[string]any{"target": "10.0.0.3:8080", "weight": 50}, h: a.createTarget}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/targets/all", op: "listAllTargets", tag: "targets", summary: "List every target, those of weight 0 included (Kong's targets/all; the same list as targets)", out: "list:Target", ok: http.StatusOK, paged: true, tagged: true, h: targets.list(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/upstreams/{upstream}/targets/{target}", op: "putTarget", tag: "targets", summary: "Create or replace a target by address (or by the id of a new one); on a discovered target only weight, as an override", in: "TargetInput", out: "Target", ok: http.StatusOK, upsert: true,
			example: map[string]any{"weight": 200, "tags": []any{"edge"}}, h: a.putTarget}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/targets/{target}", op: "getTarget", tag: "targets", summary: "Get a target by id or host:port", out: "Target", ok: http.StatusOK, h: targets.get(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/targets/{target_id}/upstream", op: "getTargetUpstream", tag: "targets", summary: "Get the upstream of the target of that id", out: "Upstream", ok: http.StatusOK, h: a.targetUpstream}),
		ctl(endpoint{method: http.MethodPatch, path: "/upstreams/{upstream}/targets/{target}", op: "patchTarget", tag: "targets", summary: "Update a target; on a discovered target, weight becomes an override", in: "TargetInput", out: "Target", ok: http.StatusOK,
			example: map[string]any{"weight": 300}, h: a.patchTarget}),
		ctl(endpoint{method: http.MethodDelete, path: "/upstreams/{upstream}/targets/{target}", op: "deleteTarget", tag: "targets", summary: "Delete a target (not a discovered one)", ok: http.StatusNoContent, h: a.deleteTarget}),
		mark(http.MethodPut, "healthy"),
		mark(http.MethodPost, "healthy"),
		mark(http.MethodPut, "unhealthy"),
		mark(http.MethodPost, "unhealthy"),
		markAddress(http.MethodPut, "healthy"),
		markAddress(http.MethodPost, "healthy"),
		markAddress(http.MethodPut, "unhealthy"),
		markAddress(http.MethodPost, "unhealthy"),
		unmark("healthy"),
		unmark("unhealthy"),

		// Overrides.
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/overrides", op: "listOverrides", tag: "overrides", summary: "List weight overrides", out: "list:Override", ok: http.StatusOK, paged: true, h: overrides.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/upstreams/{upstream}/overrides", op: "createOverride", tag: "overrides", summary: "Create a weight override (by target, tags or meta; weight or share)", in: "OverrideInput", out: "Override", ok: http.StatusCreated,
			example: map[string]any{"meta": map[string]any{"version": "v2"}, "share": 10}, h: a.createOverride}),
		ctl(endpoint{method: http.MethodGet, path: "/upstreams/{upstream}/overrides/{override}", op: "getOverride", tag: "overrides", summary: "Get a weight override", out: "Override", ok: http.StatusOK, h: overrides.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/upstreams/{upstream}/overrides/{override}", op: "patchOverride", tag: "overrides", summary: "Update a weight override", in: "OverrideInput", out: "Override", ok: http.StatusOK,
			example: map[string]any{"weight": 20}, h: a.patchOverride}),
		ctl(endpoint{method: http.MethodDelete, path: "/upstreams/{upstream}/overrides/{override}", op: "deleteOverride", tag: "overrides", summary: "Delete a weight override", ok: http.StatusNoContent, h: a.deleteOverride}),

		// Services.
		ctl(endpoint{method: http.MethodGet, path: "/services", op: "listServices", tag: "services", summary: "List services", out: "list:Service", ok: http.StatusOK, paged: true, tagged: true, h: k.service.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/services", op: "createService", tag: "services", summary: "Create a service", in: "ServiceInput", out: "Service", ok: http.StatusCreated,
			example: map[string]any{"name": "new_service", "url": "http://example_upstream/api"}, h: k.service.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/services/{service}", op: "getService", tag: "services", summary: "Get a service", out: "Service", ok: http.StatusOK, h: k.service.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/services/{service}", op: "patchService", tag: "services", summary: "Update a service (host=<upstream> switches upstreams atomically: blue-green)", in: "ServiceInput", out: "Service", ok: http.StatusOK,
			example: map[string]any{"host": "blue_upstream"}, h: k.service.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/services/{service}", op: "putService", tag: "services", summary: "Create or replace a service", in: "ServiceInput", out: "Service", ok: http.StatusOK, upsert: true,
			example: map[string]any{"host": "example_upstream", "path": "/v2", "retries": 3}, h: k.service.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/services/{service}", op: "deleteService", tag: "services", summary: "Delete a service (400 while routes use it)", ok: http.StatusNoContent, h: k.service.del(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/services/{service}/routes", op: "listServiceRoutes", tag: "routes", summary: "List a service's routes", out: "list:Route", ok: http.StatusOK, paged: true, tagged: true, h: k.route.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/services/{service}/routes", op: "createServiceRoute", tag: "routes", summary: "Create a route of this service", in: "RouteInput", out: "Route", ok: http.StatusCreated,
			example: map[string]any{"name": "new_route", "paths": []any{"/new"}}, h: k.route.create(a)}),

		ctl(endpoint{method: http.MethodGet, path: "/services/{service}/routes/{route}", op: "getServiceRoute", tag: "routes", summary: "Get a route of this service (404 when it belongs to another)", out: "Route", ok: http.StatusOK, h: a.serviceRoute}),

		// Canary and rollout.
		ctl(endpoint{method: http.MethodGet, path: "/services/{service}/canary", op: "getCanary", tag: "canary", summary: "Get the service's canary", out: "Canary", ok: http.StatusOK, h: a.getCanary}),
		ctl(endpoint{method: http.MethodPut, path: "/services/{service}/canary", op: "putCanary", tag: "canary", summary: "Create or replace the service's canary", in: "CanaryInput", out: "Canary", ok: http.StatusOK, upsert: true,
			example: map[string]any{"upstream": "canary_upstream", "percent": 0.5, "force": []any{map[string]any{"kind": "header", "name": "X-Canary", "value": "1"}}, "sticky_by": "cookie:session"}, h: a.putCanary(false)}),
		ctl(endpoint{method: http.MethodPatch, path: "/services/{service}/canary", op: "patchCanary", tag: "canary", summary: "Update the service's canary", in: "CanaryInput", out: "Canary", ok: http.StatusOK,
			example: map[string]any{"percent": 5}, h: a.putCanary(true)}),
		ctl(endpoint{method: http.MethodDelete, path: "/services/{service}/canary", op: "deleteCanary", tag: "canary", summary: "Delete the service's canary (409 while a rollout runs or is paused)", ok: http.StatusNoContent, h: a.deleteCanary}),
		ctl(endpoint{method: http.MethodGet, path: "/services/{service}/rollout", op: "getRollout", tag: "canary", summary: "Get the service's rollout and its measurements", out: "Rollout", ok: http.StatusOK, h: a.getRollout}),
		ctl(endpoint{method: http.MethodPost, path: "/services/{service}/rollout", op: "startRollout", tag: "canary", summary: "Start an automatic rollout of the service's canary", in: "RolloutInput", out: "Rollout", ok: http.StatusCreated,
			example: map[string]any{"steps": []any{1, 5, 25, 50, 100}, "interval": "30s"}, h: a.startRollout}),
		ctl(endpoint{method: http.MethodPost, path: "/services/{service}/rollout/pause", op: "pauseRollout", tag: "canary", summary: "Pause a running rollout", out: "Rollout", ok: http.StatusOK, h: a.rolloutAction("pause")}),
		ctl(endpoint{method: http.MethodPost, path: "/services/{service}/rollout/resume", op: "resumeRollout", tag: "canary", summary: "Resume a paused rollout (the step's hold time restarts)", out: "Rollout", ok: http.StatusOK, h: a.rolloutAction("resume")}),
		ctl(endpoint{method: http.MethodPost, path: "/services/{service}/rollout/abort", op: "abortRollout", tag: "canary", summary: "Abort a rollout: canary percent 0, state aborted", out: "Rollout", ok: http.StatusOK, h: a.rolloutAction("abort")}),

		// Routes.
		ctl(endpoint{method: http.MethodGet, path: "/routes", op: "listRoutes", tag: "routes", summary: "List routes", out: "list:Route", ok: http.StatusOK, paged: true, tagged: true, h: k.route.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/routes", op: "createRoute", tag: "routes", summary: "Create a route", in: "RouteInput", out: "Route", ok: http.StatusCreated,
			example: map[string]any{"paths": []any{"/api/atelier"}, "protocols": []any{"http"}, "service": map[string]any{"name": "example_service"}}, h: k.route.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/routes/{route}", op: "getRoute", tag: "routes", summary: "Get a route", out: "Route", ok: http.StatusOK, h: k.route.get(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/routes/{route}/service", op: "getRouteService", tag: "routes", summary: "Get the route's service", out: "Service", ok: http.StatusOK, h: a.routeService}),
		ctl(endpoint{method: http.MethodPatch, path: "/routes/{route}", op: "patchRoute", tag: "routes", summary: "Update a route", in: "RouteInput", out: "Route", ok: http.StatusOK,
			example: map[string]any{"strip_path": false, "methods": []any{"GET", "POST"}}, h: k.route.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/routes/{route}", op: "putRoute", tag: "routes", summary: "Create or replace a route", in: "RouteInput", out: "Route", ok: http.StatusOK, upsert: true,
			example: map[string]any{"paths": []any{"/mock"}, "headers": map[string]any{"x-version": []any{"v2"}}, "service": map[string]any{"name": "example_service"}}, h: k.route.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/routes/{route}", op: "deleteRoute", tag: "routes", summary: "Delete a route", ok: http.StatusNoContent, h: k.route.del(a)}),

		// Certificates and SNIs.
		ctl(endpoint{method: http.MethodGet, path: "/certificates", op: "listCertificates", tag: "certificates", summary: "List certificates (the file's and the API's; answers hold the private key, as Kong's)", out: "list:Certificate", ok: http.StatusOK, paged: true, tagged: true, h: k.cert.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/certificates", op: "createCertificate", tag: "certificates", summary: "Create a certificate (PEM checked, key matched, SNIs unique)", in: "CertificateInput", out: "Certificate", ok: http.StatusCreated,
			example: certificateExample(), h: k.cert.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/certificates/{certificate}", op: "getCertificate", tag: "certificates", summary: "Get a certificate by id or by one of its SNIs", out: "Certificate", ok: http.StatusOK, h: k.cert.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/certificates/{certificate}", op: "patchCertificate", tag: "certificates", summary: "Update a certificate", in: "CertificateInput", out: "Certificate", ok: http.StatusOK,
			example: map[string]any{"snis": []any{"api.example.com", "*.api.example.com"}, "tags": []any{"edge"}}, h: k.cert.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/certificates/{certificate}", op: "putCertificate", tag: "certificates", summary: "Create or replace a certificate (by id, or by an SNI it serves)", in: "CertificateInput", out: "Certificate", ok: http.StatusOK, upsert: true,
			example: certificateExample(), h: k.cert.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/certificates/{certificate}", op: "deleteCertificate", tag: "certificates", summary: "Delete a certificate and its SNIs", ok: http.StatusNoContent, h: k.cert.del(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/certificates/{certificate}/snis", op: "listCertificateSNIs", tag: "certificates", summary: "List a certificate's SNIs", out: "list:SNI", ok: http.StatusOK, paged: true, tagged: true, h: k.sni.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/certificates/{certificate}/snis", op: "createCertificateSNI", tag: "certificates", summary: "Create an SNI of this certificate (409 when the name is taken)", in: "SNIInput", out: "SNI", ok: http.StatusCreated,
			example: map[string]any{"name": "www.example.com"}, h: k.sni.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/snis", op: "listSNIs", tag: "certificates", summary: "List SNIs", out: "list:SNI", ok: http.StatusOK, paged: true, tagged: true, h: k.sni.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/snis", op: "createSNI", tag: "certificates", summary: "Create an SNI (409 when the name is taken; the certificate must exist)", in: "SNIInput", out: "SNI", ok: http.StatusCreated,
			example: sniExample(), h: k.sni.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/snis/{sni}", op: "getSNI", tag: "certificates", summary: "Get an SNI by name or id", out: "SNI", ok: http.StatusOK, h: k.sni.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/snis/{sni}", op: "patchSNI", tag: "certificates", summary: "Update an SNI (rename it, move it to another certificate, retag it)", in: "SNIInput", out: "SNI", ok: http.StatusOK,
			example: map[string]any{"tags": []any{"edge", "v2"}}, h: k.sni.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/snis/{sni}", op: "putSNI", tag: "certificates", summary: "Create or replace an SNI by name or id", in: "SNIInput", out: "SNI", ok: http.StatusOK, upsert: true,
			example: map[string]any{"certificate": map[string]any{"id": exCert}}, h: k.sni.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/snis/{sni}", op: "deleteSNI", tag: "certificates", summary: "Delete an SNI", ok: http.StatusNoContent, h: k.sni.del(a)}),
		// Tags.
		ctl(endpoint{method: http.MethodGet, path: "/tags", op: "listTags", tag: "tags", summary: "List every tag of every entity (upstreams, targets, services, routes, certificates, SNIs), by tag", out: "list:Tag", ok: http.StatusOK, paged: true, h: a.listTags}),
		ctl(endpoint{method: http.MethodGet, path: "/tags/{tag}", op: "listTag", tag: "tags", summary: "List the entities carrying one tag", out: "list:Tag", ok: http.StatusOK, paged: true, h: a.listTag}),
	}, a.pluginEndpoints(k, ctl)...)
}

func title(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func kongVersionOf(method string) string {
	if method == http.MethodPost {
		return "1.x"
	}
	return "2.x and later"
}

// Status handlers.

// statusNow is Options.Status(), or the zero Status without one.
func (a *api) statusNow() Status {
	if a.o.Status == nil {
		return Status{}
	}
	return a.o.Status()
}

func (a *api) resetState(r *http.Request) (int, any, error) {
	if err := a.ctl.ResetState(r.Context()); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (a *api) ready(*http.Request) (int, any, error) {
	ok, why := true, "ready"
	if a.o.Ready != nil {
		ok, why = a.o.Ready()
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return status, map[string]any{"ready": ok, "message": why}, nil
}

func (a *api) alive(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]string{"message": "alive"}, nil
}

func (a *api) metricsHandler() http.Handler {
	if a.o.Metrics == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, &Error{Message: "no metrics registry"})
		})
	}
	return promhttp.HandlerFor(a.o.Metrics, promhttp.HandlerOpts{})
}

func (a *api) serveSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.spec())
}
