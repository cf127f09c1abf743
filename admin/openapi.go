package admin

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// js is a JSON object of the OpenAPI document.
type js = map[string]any

func sref(name string) js { return js{"$ref": "#/components/schemas/" + name} }

func sstr(desc string) js {
	s := js{"type": "string"}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

func senum(desc string, values ...string) js {
	s := sstr(desc)
	s["enum"] = values
	return s
}

func sint(desc string, lo, hi int64) js {
	return js{"type": "integer", "minimum": lo, "maximum": hi, "description": desc}
}

func snum(desc string, lo, hi float64) js {
	return js{"type": "number", "minimum": lo, "maximum": hi, "description": desc}
}

func sbool(desc string) js { return js{"type": "boolean", "description": desc} }

func sarr(items js, desc string) js { return js{"type": "array", "items": items, "description": desc} }

func sobj(props js, required ...string) js {
	s := js{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// closed forbids keys other than props (input schemas).
func closed(s js) js { s["additionalProperties"] = false; return s }

func nullable(s js) js {
	out := js{}
	for k, v := range s {
		out[k] = v
	}
	out["nullable"] = true
	return out
}

// with returns a copy of props with more properties.
func with(props js, more js) js {
	out := js{}
	for k, v := range props {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func timestamps() js {
	return js{
		"created_at": js{"type": "integer", "description": "Unix seconds"},
		"updated_at": js{"type": "integer", "description": "Unix seconds"},
	}
}

func uuidSchema(desc string) js { return js{"type": "string", "format": "uuid", "description": desc} }

// schemas are the document's components.
func schemas() js {
	headers := js{"type": "object", "additionalProperties": sarr(sstr(""), ""), "description": "header name → values"}
	active := blockProps(config.ActiveSchema(), js{
		"headers":   nullable(headers),
		"healthy":   sref("ActiveHealthy"),
		"unhealthy": sref("ActiveUnhealthy"),
	})
	for _, k := range []string{"grpc_service", "https_sni"} {
		active[k] = nullable(active[k].(js))
	}
	upstreamIn := schemaProps(config.UpstreamSchema(), js{
		"sticky_sessions_cookie_ttl": sstr(fieldDoc(config.UpstreamSchema(), "sticky_sessions_cookie_ttl")),
		"slow_start":                 nullable(closed(sobj(blockProps(config.SlowStartSchema(), js{"window": sstr(fieldDoc(config.SlowStartSchema(), "window"))})))),
		"panic":                      closed(sobj(blockProps(config.PanicSchema(), nil))),
		"healthchecks":               sref("Healthchecks"),
		"circuit_breakers":           nullable(sref("CircuitBreakers")),
		"retry_budget":               nullable(sref("RetryBudget")),
		"retry_policy":               nullable(sref("RetryPolicy")),
	})
	for _, k := range []string{"hash_on_header", "hash_on_cookie", "hash_on_query_arg", "hash_on_uri_capture"} {
		upstreamIn[k] = nullable(upstreamIn[k].(js))
	}
	serviceIn := schemaProps(config.ServiceSchema(), js{
		"id":                 uuidSchema("optional on creation"),
		"client_certificate": nullable(closed(sobj(schemaProps(config.ClientCertificateSchema(), nil), "cert_file", "key_file"))),
	})
	routeIn := schemaProps(config.RouteSchema(), js{
		"id":                         uuidSchema("optional on creation"),
		"headers":                    nullable(headers),
		"https_redirect_status_code": js{"type": "integer", "enum": config.HTTPSRedirectCodes(), "description": fieldDoc(config.RouteSchema(), "https_redirect_status_code")},
		"protocols":                  sarr(senum("", config.RouteProtocols()...), fieldDoc(config.RouteSchema(), "protocols")),
	})
	overrideIn := js{
		"target": nullable(sstr("select one address (host:port)")),
		"tags":   nullable(sarr(sstr(""), "select targets carrying every tag (form: tags[]=x)")),
		"meta":   nullable(js{"type": "object", "additionalProperties": sstr(""), "description": "select targets whose meta has every entry (form: meta.KEY=VALUE)"}),
		"weight": nullable(sint("weight of each selected target", 0, config.MaxWeight)),
		"share":  nullable(snum("percent of the upstream's traffic for the selected targets together; the shares of an upstream sum to 100 at most", 0, config.MaxPercent)),
	}
	forceRule := sobj(js{
		"kind":  senum("", forceKinds()...),
		"name":  sstr(""),
		"value": sstr(""),
	}, "kind", "name", "value")
	measured := js{}
	for _, role := range []string{"primary", "canary"} {
		for over, what := range map[string]string{"step": "the current step", "total": "the plan's whole life"} {
			measured[role+"_requests_"+over] = js{"type": "integer", "description": "over " + what}
			measured[role+"_error_rate_"+over] = js{"type": "number", "description": "errors / requests over " + what}
			measured[role+"_p99_ms_"+over] = js{"type": "number", "description": "over " + what}
		}
	}
	rolloutStatus := sobj(measured)
	healthCounters := sobj(js{"successes": js{"type": "integer"}, "http_failures": js{"type": "integer"}, "tcp_failures": js{"type": "integer"}, "timeouts": js{"type": "integer"}})
	idRefSchema := sobj(js{"id": uuidSchema(""), "name": sstr("")}, "id")
	return js{
		"Error": sobj(js{
			"message": sstr(""),
			"fields":  js{"type": "object", "description": "field → reason; a nested field's under its parents ({\"healthchecks\": {\"active\": {\"http_path\": reason}}}), as Kong"},
			"code":    js{"type": "integer", "description": "Kong's error code"},
			"name":    sstr("Kong's error name"),
		}, "message"),
		"Welcome": sobj(js{"tagline": sstr(""), "version": sstr(""), "node_id": uuidSchema("this node's id (Kong's node_id)"),
			"hostname": sstr(""), "pids": js{"type": "object"}, "configuration": js{"type": "object"}, "plugins": js{"type": "object"}, "timers": js{"type": "object"}}),
		"DeclarativeConfig":   sobj(js{"config": sstr("the effective entities as a declarative document (YAML, _format_version 3.0)")}, "config"),
		"DeclarativeInput":    js{"type": "object", "description": "a declarative document (_format_version, upstreams, targets, services, routes, certificates), or {config: the document's text}"},
		"DeclarativeEntities": js{"type": "object", "description": "the entities now in force, by kind then id"},
		"Status": sobj(js{
			"version": sstr(""), "started_at": js{"type": "integer", "description": "Unix seconds"},
			"config_generation": js{"type": "integer"}, "config_file": sstr(""),
			"upstreams": js{"type": "integer"}, "services": js{"type": "integer"}, "routes": js{"type": "integer"},
			"uptime_seconds":     js{"type": "number"},
			"configuration_hash": sstr("MD5 of GET /config's document (Kong's configuration_hash)"),
			"database":           js{"type": "object"}, "server": js{"type": "object", "description": "total_requests, requests_in_flight"},
			"memory": js{"type": "object", "description": "Kong's workers_lua_vms (the Go heap), and go: heap_alloc, sys, num_gc, goroutines"},
			"admin_layer": sobj(js{
				"store": senum("where the admin layer lives", "memory", "file", "consul"),
				"state": senum("in_sync: the store's latest layer is in force; not_applied: it does not build with this configuration file "+
					"(the last good configuration stays, admin changes answer 409); lost: the store's copy vanished and the last known layer is being published again",
					"in_sync", "not_applied", "lost"),
				"version":       js{"type": "integer", "description": "store version of the layer in force"},
				"store_version": js{"type": "integer", "description": "latest version seen in the store (0 while lost)"},
				"error":         sstr("why the store's latest layer is not in force"),
			}, "store", "state", "version", "store_version"),
		}),
		"Ready":            sobj(js{"ready": sbool(""), "message": sstr("")}),
		"Message":          sobj(js{"message": sstr("")}),
		"IdRef":            idRefSchema,
		"ActiveHealthy":    closed(sobj(blockProps(config.ActiveHealthySchema(), nil))),
		"ActiveUnhealthy":  closed(sobj(blockProps(config.ActiveUnhealthySchema(), nil))),
		"PassiveHealthy":   closed(sobj(blockProps(config.PassiveHealthySchema(), nil))),
		"PassiveUnhealthy": closed(sobj(blockProps(config.PassiveUnhealthySchema(), nil))),
		"Healthchecks": closed(sobj(blockProps(config.HealthchecksSchema(), js{
			"active": nullable(closed(sobj(active))),
			"passive": nullable(closed(sobj(blockProps(config.PassiveSchema(), js{
				"healthy":      sref("PassiveHealthy"),
				"unhealthy":    sref("PassiveUnhealthy"),
				"success_rate": nullable(closed(sobj(blockProps(config.SuccessRateSchema(), nil)))),
			})))),
		}))),
		"CircuitBreakers": closed(sobj(blockProps(config.CircuitBreakersSchema(), nil))),
		"RetryPolicy": closed(sobj(blockProps(config.RetryPolicySchema(), js{
			"retry_on": sarr(sstr("a condition ("+strings.Join(config.RetryOnConditions(), ", ")+"), an HTTP status as a string, or a gRPC status ("+
				strings.Join(config.GRPCRetryOnConditions(), ", ")+")"), "what is retried (default "+strings.Join(config.DefaultRetryPolicy().RetryOn, ", ")+")"),
			"retry_backoff": closed(sobj(blockProps(config.RetryBackoffSchema(), nil))),
		}))),
		"RetryBudget":   closed(sobj(blockProps(config.RetryBudgetSchema(), nil))),
		"UpstreamInput": closed(sobj(upstreamIn)),
		"Upstream": sobj(with(upstreamIn, with(timestamps(), js{"id": uuidSchema("")})),
			"id", "name", "algorithm", "hash_on", "hash_fallback", "slots", "healthchecks", "circuit_breakers", "retry_budget", "created_at", "updated_at"),
		"TargetInput": closed(sobj(schemaProps(config.TargetSchema(), js{"target": sstr(fieldDoc(config.TargetSchema(), "target"))}))),
		"Target": sobj(with(timestamps(), js{
			"id": uuidSchema(""), "target": sstr(""), "weight": sint("", 0, config.MaxWeight), "upstream": sref("IdRef"),
			"tags":             nullable(sarr(sstr(""), "")),
			"source":           sstr("static (the file), admin (the API) or the discovery source, e.g. consul:web"),
			"effective_weight": nullable(js{"type": "integer", "description": "the balancer's weight now (slow start, overrides, health)"}),
			"healthy":          nullable(sbool("")),
			"meta":             js{"type": "object", "additionalProperties": sstr(""), "description": "discovery metadata"},
			"priority":         sint("priority level (lower first)", 0, config.MaxPriority),
			"backup":           sbool("takes traffic only when no primary target is healthy"),
			"zone":             sstr("the target's zone (zone-aware routing); empty when unknown"),
		}), "id", "target", "weight", "upstream", "source", "priority", "backup", "zone"),
		"TargetHealth": sobj(js{
			"id": uuidSchema(""), "target": sstr(""), "weight": js{"type": "integer"}, "upstream": sref("IdRef"),
			"tags": nullable(sarr(sstr(""), "")), "created_at": js{"type": "integer"},
			"health": senum("", "HEALTHY", "UNHEALTHY", "HEALTHCHECKS_OFF"),
			"data": sobj(js{
				"source": sstr(""), "effective_weight": nullable(js{"type": "integer"}),
				"mark":           senum("the persisted manual mark", "none", "healthy", "unhealthy"),
				"checks_healthy": nullable(sbool("the checks' own verdict")),
				"cause":          sstr("why the checks' verdict last changed"),
				"since":          js{"type": "string", "format": "date-time"},
				"active":         healthCounters, "passive": healthCounters,
				"ejected": sbool(""), "ejections": js{"type": "integer"},
				"ejected_until": js{"type": "string", "format": "date-time"},
				"success_rate": sobj(js{"rate": snum("percent of successes in the last interval judged", 0, 100),
					"requests": js{"type": "integer"}, "threshold": snum("percent under which a target was an outlier; 0: too few targets", -1e9, 100),
					"at": js{"type": "string", "format": "date-time"}}),
				"addresses": sarr(sobj(js{
					"ip": sstr(""), "port": js{"type": "integer"}, "weight": js{"type": "integer"},
					"health": senum("", "HEALTHY", "UNHEALTHY", "HEALTHCHECKS_OFF"),
				}, "ip", "port", "health", "weight"), "the target's addresses (Kong's shape): one, the target itself"),
			}, "addresses"),
		}, "id", "target", "health", "data"),
		"OverrideInput": closed(sobj(overrideIn)),
		"Override": sobj(with(overrideIn, js{"id": uuidSchema(""), "upstream": sref("IdRef"), "created_at": js{"type": "integer"}}),
			"id", "upstream"),
		"ServiceInput": closed(sobj(with(serviceIn, js{"url": sstr(fieldDoc(config.ServiceSchema(), "url"))}))),
		"Service":      sobj(with(serviceIn, timestamps()), "id", "protocol", "host", "port", "retries"),
		"RouteInput": closed(sobj(with(routeIn, js{
			"service": js{"description": "the route's service (null or absent: none, its requests are answered 503 as Kong): {\"id\": ...} or {\"name\": ...} (form: service.id=... or service.name=...), or an id or name",
				"oneOf": []any{sstr(""), closed(sobj(js{"id": uuidSchema("")})), closed(sobj(js{"name": sstr("")}))}},
		}))),
		"Route":     sobj(with(routeIn, with(timestamps(), js{"service": nullable(sref("IdRef"))})), "id", "service", "strip_path", "preserve_host", "path_handling"),
		"ForceRule": forceRule,
		"CanaryInput": closed(sobj(js{
			"upstream":  sstr("the canary upstream; exists, differs from the service's host"),
			"percent":   snum("share of the service's traffic for the canary; decimals allowed", 0, config.MaxPercent),
			"force":     nullable(sarr(js{"oneOf": []any{sref("ForceRule"), sstr("kind:name:value, e.g. header:X-Canary:1")}}, "requests that always go to the canary")),
			"sticky_by": nullable(sstr("header:NAME, cookie:NAME, ip, or empty for an exact split")),
		})),
		"Canary": sobj(js{
			"service": sref("IdRef"), "primary": sstr("the service's host"), "upstream": sstr(""),
			"percent": snum("", 0, config.MaxPercent), "force": sarr(sref("ForceRule"), ""),
			"sticky_by": nullable(sstr("")), "updated_at": js{"type": "integer"},
		}, "service", "upstream", "percent"),
		"RolloutInput": closed(sobj(js{
			"steps":                   sarr(snum("", 0, config.MaxPercent), "canary percents, strictly increasing (form: steps[]=1 or steps=1,5,25)"),
			"interval":                js{"oneOf": []any{sstr("a duration, e.g. 30s"), js{"type": "number", "description": "seconds"}}, "description": "how long each step holds (" + fmtDuration(config.MinRolloutInterval) + ".." + fmtDuration(config.MaxRolloutInterval) + ")"},
			"max_error_rate_increase": snum("default "+fmtNum(defaultMaxErrorRateIncrease), 0, config.MaxErrorRateIncrease),
			"max_p99_ratio":           snum("default "+fmtNum(defaultMaxP99Ratio), config.MinP99Ratio, config.MaxP99Ratio),
			"min_requests":            sint("default "+strconv.Itoa(defaultMinRequests), 0, config.MaxMinRequests),
		}, "steps", "interval")),
		"RolloutStatus":    rolloutStatus,
		"CertificateInput": closed(sobj(with(certIn(), js{"id": uuidSchema("optional; a random one otherwise")}))),
		"Certificate": sobj(with(certIn(), with(timestamps(), js{
			"id":        uuidSchema(""),
			"cert_file": sstr("a certificate of the configuration file read from files: its path (cert and key are null)"),
			"key_file":  sstr("likewise, the key's path"),
		})), "id", "cert", "key", "snis"),
		"Tag": sobj(js{
			"entity_name": senum("the entity's kind", "upstreams", "targets", "services", "routes", "plugins", "consumers", "keyauth_credentials", "certificates", "snis"),
			"entity_id":   uuidSchema(""),
			"tag":         sstr(""),
		}, "entity_name", "entity_id", "tag"),
		"SNIInput": closed(sobj(js{
			"id":          uuidSchema("ignored"),
			"name":        sstr("a host name, *.suffix or prefix.* (one wildcard label, leftmost or rightmost); unique across certificates"),
			"certificate": nullable(sref("IdRef")),
			"tags":        tagsSchema(),
		})),
		"SNI": sobj(with(timestamps(), js{
			"id": uuidSchema("random, or derived from the name for the file's"), "name": sstr(""), "tags": nullable(sarr(sstr(""), "")),
			"certificate": sref("IdRef"),
		}), "id", "name", "certificate"),
		"Rollout": sobj(js{
			"service": sref("IdRef"), "steps": sarr(js{"type": "number"}, ""), "interval": sstr(""),
			"max_error_rate_increase": js{"type": "number"}, "max_p99_ratio": js{"type": "number"}, "min_requests": js{"type": "integer"},
			"state":          senum("", state.RolloutStates()...),
			"step":           js{"type": "integer"},
			"percent":        js{"type": "number", "description": "the current step's percent"},
			"canary_percent": nullable(js{"type": "number"}),
			"step_since":     js{"type": "integer", "description": "Unix seconds"}, "reason": nullable(sstr("")), "updated_at": js{"type": "integer"},
			"status": nullable(sref("RolloutStatus")),
		}, "service", "steps", "state", "step"),
	}
}

// certIn is a certificate's writable fields.
func certIn() js {
	return js{
		"cert":     nullable(sstr("PEM certificate chain, leaf first")),
		"key":      nullable(sstr("PEM private key of the leaf (answers hold it, as Kong's)")),
		"cert_alt": nullable(sstr("an alternate PEM chain (another key type, e.g. ECDSA beside RSA); served to clients that support it first")),
		"key_alt":  nullable(sstr("the alternate chain's PEM key")),
		"snis":     sarr(sstr("a host name, *.suffix or prefix.* (one wildcard label); unique across certificates"), "the names this certificate serves"),
		"tags":     tagsSchema(),
	}
}

// schemaProps are the input properties of a field table's fields, and
// custom's other entries (an id). custom also gives what a field's type
// cannot say; a custom field without an entry is left out. A field the
// file takes as null is nullable, and so is the name: an entity created
// without one is keyed by its id.
func schemaProps[T any](s *config.Schema[T], custom js) js {
	out := js{}
	for k, v := range custom {
		if _, field := s.Field(k); !field {
			out[k] = v
		}
	}
	for _, f := range s.Fields {
		if f.FileOnly {
			continue
		}
		var p js
		switch f.Type {
		case config.FieldString:
			p = sstr(f.Doc)
			if f.OneOf != nil {
				p = senum(f.Doc, f.OneOf...)
			}
		case config.FieldInt, config.FieldOptInt, config.FieldMillis:
			p = sint(f.Doc, f.Min, f.Max)
		case config.FieldFloat:
			p = snum(f.Doc, float64(f.Min), float64(f.Max))
		case config.FieldSeconds, config.FieldDuration:
			p = snum(f.Doc, time.Duration(f.Min).Seconds(), time.Duration(f.Max).Seconds())
		case config.FieldInts:
			p = sarr(js{"type": "integer", "minimum": f.Min, "maximum": f.Max}, f.Doc)
		case config.FieldBool, config.FieldOptBool:
			p = sbool(f.Doc)
		case config.FieldStrings, config.FieldTexts:
			p = sarr(sstr(""), f.Doc)
		case config.FieldTags:
			out[f.Name] = tagsSchema()
			continue
		}
		if c, ok := custom[f.Name].(js); ok || f.Type == config.FieldCustom {
			if ok {
				out[f.Name] = c
			}
			continue
		}
		if f.Nullable || f.Name == "name" {
			p = nullable(p)
		}
		out[f.Name] = p
	}
	return out
}

// blockProps are the properties of a block's fields (no id), a custom
// field's from custom.
func blockProps[T any](s *config.Schema[T], custom js) js {
	out := schemaProps(s, custom)
	delete(out, "id")
	return out
}

// fieldDoc is the documentation of a schema's field.
func fieldDoc[T any](s *config.Schema[T], name string) string {
	if f, ok := s.Field(name); ok {
		return f.Doc
	}
	return ""
}

// tagsSchema is an entity's tags.
func tagsSchema() js {
	return nullable(sarr(js{"type": "string", "minLength": 1, "maxLength": config.MaxTagLen},
		"printable characters except ',' and '/' (no spaces), 1 to "+strconv.Itoa(config.MaxTagLen)+" each; null clears; a PATCH replaces them; lists filter with ?tags=a,b (every tag) or ?tags=a/b (any of them)"))
}

// pathParams describes the path parameters.
func pathParams() map[string][2]string {
	return map[string][2]string{
		"upstream":  {"the upstream's id or name", exUpstream},
		"target":    {"the target's id or host:port", exTarget},
		"target_id": {"the target's id", targetID(exUpstream, exTarget)},
		"override":  {"the override's id", exOverride},
		"address":   {"one address of the target, ip:port", exTarget},
		"service":   {"the service's id or name", exService},
		"route":     {"the route's id or name", exRoute},
		// certificate: the contract fixture's certificate serves exSNI.
		"certificate": {"the certificate's id or one of its SNIs", exCert},
		"sni":         {"the SNI's name or id", exSNI},
		"tag":         {"one tag", exTag},
		"plugin":      {"the plugin's id", exPlugin},
		"consumer":    {"the consumer's id or username", exConsumer},
		"keyauth":     {"the key-auth credential's id or key", exKeyAuth},
		"name":        {"a plugin's name", "rate-limiting"},
	}
}

// openAPI builds the OpenAPI 3.0 document from the routes table.
func (a *api) openAPI() js {
	comps := schemas()
	for name, s := range debugSchemas() {
		comps[name] = s
	}
	for name, s := range pluginSchemas() {
		comps[name] = s
	}
	params := pathParams()
	paths := js{}
	for _, e := range a.table {
		op := js{"operationId": e.op, "summary": e.summary, "tags": []string{e.tag}}
		var ps []any
		for _, seg := range strings.Split(e.path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				name = strings.TrimSuffix(name, "}")
				p := params[name]
				ps = append(ps, js{"name": name, "in": "path", "required": true, "description": p[0], "schema": sstr(""), "example": p[1]})
			}
		}
		if e.paged {
			ps = append(ps,
				js{"name": "size", "in": "query", "schema": js{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}, "description": "page size"},
				js{"name": "offset", "in": "query", "schema": sstr(""), "description": "the offset of the previous page's answer"})
		}
		if e.tagged {
			ps = append(ps, js{"name": "tags", "in": "query", "schema": sstr(""),
				"description": "only the items carrying every tag (a,b) or any of them (a/b); mixing ',' and '/' is a 400. Any other query parameter is a 400 naming it"})
		}
		if len(ps) > 0 {
			op["parameters"] = ps
		}
		if e.in != "" {
			content := js{}
			for _, ct := range []string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data"} {
				c := js{"schema": sref(e.in)}
				if e.in == "object" {
					c["schema"] = js{"type": "object"}
				}
				if ct == "application/json" && e.example != nil {
					c["example"] = e.example
				}
				content[ct] = c
			}
			op["requestBody"] = js{"required": e.method != http.MethodPatch, "content": content,
				"description": "JSON (unknown keys refused) or a form: dotted keys for nested objects, name[]=v or repeated name=v for arrays, an empty value for null"}
		}
		resp := js{"default": js{"description": "error", "content": js{"application/json": js{"schema": sref("Error")}}}}
		answer := js{"description": http.StatusText(e.ok)}
		switch {
		case e.out == "":
		case e.out == "text":
			answer["content"] = js{"text/plain": js{"schema": sstr("")}}
		case e.out == "events":
			answer["content"] = js{"text/event-stream": js{"schema": sstr("event: stats, data: a JSON frame")}}
		case e.out == "object":
			answer["content"] = js{"application/json": js{"schema": js{"type": "object"}}}
		case strings.HasPrefix(e.out, "list:"):
			item := strings.TrimPrefix(e.out, "list:")
			name := item + "List"
			props, required := js{
				"data":   sarr(sref(item), ""),
				"next":   nullable(sstr("the next page's path, null on the last page")),
				"offset": sstr("the offset to pass for the next page"),
			}, []string{"data", "next"}
			if item == "TargetHealth" { // Kong's health lists are per node
				props["total"] = sint("the number of targets over every page", 0, math.MaxInt32)
				props["node_id"] = sstr("the id of the node answering: health is each node's own view")
				required = append(required, "total", "node_id")
			}
			comps[name] = sobj(props, required...)
			answer["content"] = js{"application/json": js{"schema": sref(name)}}
		default:
			answer["content"] = js{"application/json": js{"schema": sref(e.out)}}
		}
		resp[strconv.Itoa(e.ok)] = answer
		if e.upsert {
			created := js{"description": "Created"}
			if c, ok := answer["content"]; ok {
				created["content"] = c
			}
			resp["201"] = created
		}
		if e.path == "/ready" {
			resp["503"] = js{"description": "not ready", "content": js{"application/json": js{"schema": sref("Ready")}}}
		}
		op["responses"] = resp
		if e.path == "/health" || e.path == "/ready" {
			op["security"] = []any{}
		}
		item, _ := paths[e.path].(js)
		if item == nil {
			item = js{}
			paths[e.path] = item
		}
		item[strings.ToLower(e.method)] = op
	}
	return js{
		"openapi": "3.0.3",
		"info": js{
			"title":   "Outrigger admin API",
			"version": "1",
			"description": "Kong-compatible admin API (upstreams → targets, services → routes) with weight overrides, " +
				"manual health marks, canaries and rollouts. Entities are addressed by id or name; lists page with size and offset " +
				"and filter by tags; an unknown query parameter is a 400.",
		},
		"paths": paths,
		"components": js{
			"schemas": comps,
			"securitySchemes": js{
				"bearer":         js{"type": "http", "scheme": "bearer", "description": "Options.Token, when set"},
				"kongAdminToken": js{"type": "apiKey", "in": "header", "name": "Kong-Admin-Token"},
			},
		},
		"security": []any{js{"bearer": []any{}}, js{"kongAdminToken": []any{}}},
	}
}
