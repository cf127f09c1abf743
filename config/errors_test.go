package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// wantErr is an expected error: exact position, and a fragment of the
// message.
type wantErr struct {
	line, col int
	msg       string
}

// checkErrors parses src and checks that exactly the wanted errors come
// back, in order.
func checkErrors(t *testing.T, src string, env map[string]string, want []wantErr) {
	t.Helper()
	f, err := Parse("bad.yaml", []byte(src), envOf(env))
	if err == nil {
		t.Fatalf("Parse succeeded, want %d error(s); got %+v", len(want), f)
	}
	if f != nil {
		t.Errorf("Parse returned a File along with an error")
	}
	var list *ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want *ErrorList: %v", err, err)
	}
	ok := len(list.Errors) == len(want)
	for i := 0; ok && i < len(want); i++ {
		e, w := list.Errors[i], want[i]
		ok = e.File == "bad.yaml" && e.Line == w.line && e.Col == w.col && strings.Contains(e.Msg, w.msg)
	}
	if !ok {
		var b strings.Builder
		for _, w := range want {
			b.WriteString("\n  ")
			b.WriteString(Error{File: "bad.yaml", Line: w.line, Col: w.col, Msg: "..." + w.msg + "..."}.Error())
		}
		t.Errorf("got errors:\n%v\nwant:%s", err, b.String())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		desc string
		src  string
		env  map[string]string
		want []wantErr
	}{
		// Structure.
		{
			desc: "unknown key in upstream",
			src: `upstreams:
  - name: u
    foo: 1
`,
			want: []wantErr{{3, 5, `unknown field "foo" in upstream; expected one of: name, algorithm, hash_on,`}},
		},
		{
			desc: "unknown top-level key",
			src: `proxy:
  listen: 127.0.0.1:8000
prxy: {}
`,
			want: []wantErr{{3, 1, `unknown field "prxy" in the top level; expected one of: proxy, admin, log, upstreams, services, routes`}},
		},
		{
			desc: "unknown key deep in healthchecks",
			src: `upstreams:
  - name: u
    healthchecks:
      active:
        healthy: {intervl: 1}
`,
			want: []wantErr{{5, 19, `unknown field "intervl" in healthchecks.active.healthy; expected one of: interval, successes, http_statuses`}},
		},
		{
			desc: "duplicate key",
			src: `log:
  level: info
  format: json
  level: debug
`,
			want: []wantErr{{4, 3, `duplicate key "level" (first at line 2)`}},
		},
		{
			desc: "section of the wrong kind",
			src: `upstreams:
  name: u
services: x
`,
			want: []wantErr{
				{2, 3, "upstreams: expected a list, got a mapping"},
				{3, 11, `services: expected a list, got string "x"`},
			},
		},
		{
			desc: "top level not a mapping",
			src:  "- a\n- b\n",
			want: []wantErr{{1, 1, "configuration: expected a mapping, got a list"}},
		},
		{
			desc: "YAML syntax error at the unclosed bracket",
			src:  "proxy:\n  listen: [oops\n",
			want: []wantErr{{2, 12, "YAML syntax error: did not find expected ',' or ']'"}},
		},
		{
			desc: "YAML syntax error at the offending colon",
			src:  "proxy:\n  listen: a\n   bad: x\n",
			want: []wantErr{{3, 7, "YAML syntax error: mapping values are not allowed in this context"}},
		},
		{
			desc: "YAML syntax error on the first line",
			src:  "proxy: a: b\n",
			want: []wantErr{{1, 9, "YAML syntax error: mapping values are not allowed in this context"}},
		},
		{
			desc: "YAML syntax error: a tab starting the file",
			src:  "\tproxy: {}\n",
			want: []wantErr{{1, 1, "YAML syntax error: found character that cannot start any token"}},
		},
		{
			desc: "YAML syntax error after multi-byte characters",
			src:  "log:\n  level: \"ééé\\q\"\n",
			want: []wantErr{{2, 14, "YAML syntax error: found unknown escape character"}},
		},
		{
			desc: "YAML syntax error in a second document",
			src:  "proxy: {}\n---\nlog: [\n",
			want: []wantErr{{4, 1, "YAML syntax error: did not find expected node content"}},
		},
		{
			desc: "unterminated quoted string: where it opens",
			src:  "log:\n  level: 'info\n",
			want: []wantErr{{2, 10, "YAML syntax error: found unexpected end of stream"}},
		},

		// Text the YAML library refuses without a position.
		{
			desc: "invalid UTF-8 in a value",
			src:  "proxy:\n  listen: \"a\xffb\"\n",
			want: []wantErr{{2, 13, "invalid UTF-8 (byte 0xff): the file must be UTF-8 text"}},
		},
		{
			desc: "invalid UTF-8 after multi-byte characters, in a comment",
			src:  "log: {}\n# héllo \xc3\x28\n",
			want: []wantErr{{2, 9, "invalid UTF-8 (byte 0xc3)"}},
		},
		{
			desc: "NUL byte",
			src:  "proxy:\n  listen: a\x00b\n",
			want: []wantErr{{2, 12, "NUL byte (U+0000): the file must be text"}},
		},
		{
			desc: "control character",
			src:  "log:\n  level: info\n  \x07format: json\n",
			want: []wantErr{{3, 3, "control character U+0007 is not allowed in YAML"}},
		},
		{
			desc: "DEL and C1 control characters",
			src:  "log:\n  level: \"in\u0085fo\x7f\"\n",
			want: []wantErr{{2, 16, "control character U+007F"}},
		},
		{
			desc: "CRLF line ends count once",
			src:  "log:\r\n  level: info\r\n  format: \x1b\r\n",
			want: []wantErr{{3, 11, "control character U+001B"}},
		},
		{
			desc: "several documents",
			src:  "proxy: {}\n---\nadmin: {}\n",
			want: []wantErr{{2, 1, "a configuration file holds a single YAML document"}},
		},
		{
			desc: "recursive alias",
			src:  "upstreams: &a [*a]\n",
			want: []wantErr{{1, 16, "recursive alias *a (it is used inside its own anchor)"}},
		},
		{
			desc: "recursive merge",
			src:  "services:\n  - &s\n    name: s\n    <<: *s\n",
			want: []wantErr{{4, 9, "recursive alias *s"}},
		},
		{
			desc: "alias bomb",
			src: `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
`,
			want: []wantErr{{6, 36, "document too large"}},
		},
		{
			desc: "unknown anchor",
			src:  "upstreams:\n  - name: u\n    targets: *nope\n",
			want: []wantErr{{3, 14, "YAML syntax error: unknown anchor 'nope' referenced"}},
		},
		{
			desc: "syntax errors report the right line",
			src:  "upstreams:\n  - name: u\n    targets:\n      - x\n      y: 2\n",
			want: []wantErr{{5, 8, "did not find expected '-' indicator"}},
		},
		{
			desc: "unsupported tag",
			src:  "log:\n  level: !secret info\n",
			want: []wantErr{{2, 10, "level: unsupported YAML tag !secret"}},
		},

		// Types.
		{
			desc: "string where an integer is expected",
			src: `upstreams:
  - name: u
    targets:
      - target: 10.0.0.1:80
        weight: abc
`,
			want: []wantErr{{5, 17, `weight: expected an integer, got string "abc"`}},
		},
		{
			desc: "quoted number is a string",
			src: `services:
  - name: s
    host: h
    port: "80"
`,
			want: []wantErr{{4, 11, `port: expected an integer, got string "80"`}},
		},
		{
			desc: "float, list, null and boolean mismatches",
			src: `upstreams:
  - name: u
    slots: 100.5
    algorithm: [round-robin]
    hash_on:
    targets:
      - target: true
`,
			want: []wantErr{
				{3, 12, "slots: expected an integer, got float 100.5"},
				{4, 16, "algorithm: expected a string, got a list"},
				{5, 13, "hash_on: expected a string, got null"},
				{7, 17, "target: expected a string, got boolean true"},
			},
		},
		{
			desc: "wrong scalar types in proxy and log",
			src: `proxy:
  listen: 8000
  drain_timeout: 30
  max_body_size: 10XB
log:
  access_log: yes
`,
			want: []wantErr{
				{2, 11, "listen: expected a string, got integer 8000"},
				{3, 18, `drain_timeout: expected a duration such as "30s", got integer 30`},
				{4, 18, `max_body_size: invalid size "10XB"`},
				{6, 15, `access_log: expected a boolean (true or false), got string "yes"`},
			},
		},
		{
			desc: "client connection settings out of range",
			src: `proxy:
  idle_timeout: 0
  header_timeout: -1s
  max_connections: -1
  http2_max_concurrent_streams: 0
  http2_max_header_list_size: 512
`,
			want: []wantErr{
				{2, 17, "idle_timeout: must be positive, got 0"},
				{3, 19, "header_timeout: must be positive, got -1s"},
				{4, 20, "max_connections: "},
				{5, 33, "http2_max_concurrent_streams: must be between 1 and 2147483647, got 0"},
				{6, 31, "http2_max_header_list_size: must be between 1KB and 16MB, got 512 bytes"},
			},
		},

		// Names.
		{
			desc: "duplicate upstream names",
			src: `upstreams:
  - name: u
  - name: v
  - name: u
`,
			want: []wantErr{{4, 11, `duplicate upstream name "u" (first defined at line 2)`}},
		},
		{
			desc: "duplicate service names",
			src: `services:
  - name: s
    host: a
  - host: b
    name: s
`,
			want: []wantErr{{5, 11, `duplicate service name "s" (first defined at line 2)`}},
		},
		{
			desc: "nested and top-level routes share a namespace",
			src: `services:
  - name: s
    host: h
    routes:
      - name: r
        paths: [/a]
routes:
  - name: r
    service: s
    paths: [/b]
`,
			want: []wantErr{{8, 11, `duplicate route name "r" (first defined at line 5)`}},
		},
		{
			desc: "duplicate route names across services, top-level first in the file",
			src: `routes:
  - name: r
    service: s
    paths: [/b]
services:
  - name: s
    host: h
    routes:
      - name: r
        paths: [/a]
`,
			want: []wantErr{{9, 15, `duplicate route name "r" (first defined at line 2)`}},
		},
		{
			desc: "missing and invalid names",
			src: `upstreams:
  - algorithm: random
  - name: "bad name"
services:
  - host: h
  - name: "s/1"
    host: h
`,
			want: []wantErr{
				{2, 5, "upstream: name is required"},
				{3, 11, `name: "bad name" is not a valid upstream name`},
				{5, 5, "service: name (or id) is required"},
				{6, 11, `name: "s/1" is not a valid name`},
			},
		},
		{
			desc: "names shaped as UUIDs",
			src: `upstreams:
  - name: 7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967
services:
  - name: 7A1C5D1E-0B8F-4C3E-9F2D-6F7574726967
    host: h
    routes:
      - name: 00000000-0000-0000-0000-000000000000
        paths: [/]
`,
			want: []wantErr{
				{2, 11, `name: "7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967" is not a valid name: it has the form of a UUID`},
				{4, 11, `name: "7A1C5D1E-0B8F-4C3E-9F2D-6F7574726967" is not a valid name: it has the form of a UUID`},
				{7, 15, `name: "00000000-0000-0000-0000-000000000000" is not a valid name: it has the form of a UUID`},
			},
		},

		// Environment.
		{
			desc: "unset variable without default",
			src: `proxy:
  listen: ${LISTEN}
  drain_timeout: ${DRAIN:-10s}
`,
			want: []wantErr{{2, 11, "listen: environment variable LISTEN is not set"}},
		},
		{
			desc: "expanded value of the wrong type",
			env:  map[string]string{"PORT": "eighty"},
			src: `services:
  - name: s
    host: h
    port: ${PORT}
    retries: "${RETRIES:-x}"
`,
			want: []wantErr{
				{4, 11, `port: expected an integer, got "eighty" (after variable expansion)`},
				{5, 14, `retries: expected an integer, got "x" (after variable expansion)`},
			},
		},
		{
			desc: "malformed reference",
			src:  "log:\n  level: ${LEVEL\n",
			want: []wantErr{{2, 10, "level: unterminated variable reference"}},
		},

		// Upstreams and targets.
		{
			desc: "weight out of range",
			src: `upstreams:
  - name: u
    targets:
      - target: 10.0.0.1:80
        weight: 70000
      - target: 10.0.0.2:80
        weight: -1
`,
			want: []wantErr{
				{5, 17, "weight: must be between 0 and 65535, got 70000"},
				{7, 17, "weight: must be between 0 and 65535, got -1"},
			},
		},
		{
			desc: "priority and backup",
			src: `upstreams:
  - name: u
    targets:
      - target: 10.0.0.1:80
        priority: 70000
      - target: 10.0.0.2:80
        priority: -1
        backup: maybe
        zone: "a,b"
proxy:
  zone: ""
`,
			want: []wantErr{
				{5, 19, "priority: must be between 0 and 65535, got 70000"},
				{7, 19, "priority: must be between 0 and 65535, got -1"},
				{8, 17, `backup: expected a boolean (true or false), got string "maybe"`},
				{9, 15, "zone: "},
				{11, 9, "zone: "},
			},
		},
		{
			desc: "bad targets",
			src: `upstreams:
  - name: u
    targets:
      - target: 10.0.0.1
      - target: 10.0.0.1:0
      - target: "[::1]:99999"
      - target: ::1:80
      - target: bad_host!:80
      - weight: 5
`,
			want: []wantErr{
				{4, 17, `target: "10.0.0.1" is not host:port`},
				{5, 17, "port 0 is out of range 1..65535"},
				{6, 17, "port 99999 is out of range 1..65535"},
				{7, 17, `target: "::1:80" is not host:port`},
				{8, 17, `invalid host "bad_host!"`},
				{9, 9, "target: target (host:port) is required"},
			},
		},
		{
			desc: "duplicate target in one upstream",
			src: `upstreams:
  - name: u
    targets:
      - target: 10.0.0.1:80
      - target: 10.0.0.1:080
  - name: v
    targets:
      - target: 10.0.0.1:80
`,
			want: []wantErr{{5, 17, "target: duplicate target 10.0.0.1:80 in upstream (first at line 4)"}},
		},
		{
			desc: "bad algorithm and slots",
			src: `upstreams:
  - name: u
    algorithm: fastest
    slots: 5
`,
			want: []wantErr{
				{3, 16, `algorithm: "fastest" is not valid; expected one of: round-robin, consistent-hashing, least-connections, latency, sticky-sessions, random`},
				{4, 12, "slots: must be between 10 and 65536, got 5"},
			},
		},
		{
			desc: "hashing combinations",
			src: `upstreams:
  - name: a
    hash_on: header
  - name: b
    hash_on: cookie
    hash_on_cookie: c
    hash_fallback: ip
  - name: c
    hash_on: ip
    hash_fallback: ip
  - name: d
    hash_fallback: ip
  - name: e
    hash_on: ip
    hash_fallback: query_arg
`,
			want: []wantErr{
				{3, 14, "hash_on: hash_on_header is required when hash_on is header"},
				{7, 20, "hash_fallback: must be none when hash_on is cookie"},
				{10, 20, "hash_fallback: must differ from hash_on (both are ip)"},
				{12, 20, "hash_fallback: must be none when hash_on is none"},
				{15, 20, "hash_fallback: hash_on_query_arg is required when hash_fallback is query_arg"},
			},
		},
		{
			desc: "slow start and panic",
			src: `upstreams:
  - name: u
    slow_start: {aggression: 0, min_weight_percent: 101}
    panic: {min_healthy_percent: 50, mode: fail-fast}
`,
			want: []wantErr{
				{3, 17, "slow_start: window is required"},
				{3, 30, "aggression: must be greater than 0"},
				{3, 53, "min_weight_percent: must be between 0 and 100, got 101"},
				{4, 44, `mode: "fail-fast" is not valid; expected one of: fail-open, fail-closed`},
			},
		},
		{
			desc: "circuit breakers and retry budget",
			src: `upstreams:
  - name: u
    circuit_breakers: {max_requests: -1, max_retries: x, max_widgets: 1}
    retry_budget: {retry_ratio: 1001, min_retries_per_second: -1, ttl: 100ms}
`,
			want: []wantErr{
				{3, 38, "max_requests: must be between 0 and 2147483647, got -1"},
				{3, 55, `max_retries: expected an integer, got string "x"`},
				{3, 58, `unknown field "max_widgets" in circuit_breakers; expected one of: max_requests, max_retries, max_connections, max_pending_requests`},
				{4, 33, "retry_ratio: must be between 0 and 1000, got 1001"},
				{4, 63, "min_retries_per_second: must be between 0 and 100000, got -1"},
				{4, 72, "ttl: must be between 1s and 10m0s"},
			},
		},
		{
			desc: "retry policy and success rate",
			src: `upstreams:
  - name: u
    circuit_breakers: {max_pending_requests: -2}
    retry_policy:
      retry_on: [reset, 503, bogus, 600, " 502"]
      per_try_timeout: 0s
      timeout: 48h
      retry_backoff: {base_interval: 100ms, max_interval: 10ms, jitter: 1}
    healthchecks:
      passive:
        success_rate: {minimum_hosts: 1, request_volume: 0, stdev_factor: x, interval: 50ms}
`,
			want: []wantErr{
				{3, 46, "max_pending_requests: must be between 0 and 2147483647, got -2"},
				{5, 30, `retry_on: unknown condition "bogus"`},
				{5, 37, `retry_on: unknown condition "600"`},
				{5, 42, `retry_on: unknown condition " 502"`},
				{6, 24, "per_try_timeout: must be positive"},
				{7, 16, "timeout: must be at most 24h0m0s"},
				{8, 59, "max_interval: 10ms is less than base_interval 100ms"},
				{8, 65, `unknown field "jitter" in retry_policy.retry_backoff`},
				{11, 39, "minimum_hosts: must be between 2 and 2147483647, got 1"},
				{11, 58, "request_volume: must be between 1 and 2147483647, got 0"},
				{11, 75, `stdev_factor: expected an integer, got string "x"`},
				{11, 88, "interval: must be between 100ms and 1h0m0s"},
			},
		},
		{
			desc: "healthcheck values",
			src: `upstreams:
  - name: u
    healthchecks:
      threshold: 101
      active:
        type: udp
        timeout: 0
        concurrency: 0
        http_path: health
        healthy: {http_statuses: [200, 1000], successes: 256}
      passive:
        unhealthy: {http_statuses: 500}
        base_ejection_time: 1m
        max_ejection_time: 30s
`,
			want: []wantErr{
				{4, 18, "threshold: must be between 0 and 100, got 101"},
				{6, 15, `type: "udp" is not valid; expected one of: http, https, tcp, grpc, grpcs`},
				{7, 18, "timeout: must be greater than 0"},
				{8, 22, "concurrency: must be between 1 and 2147483647, got 0"},
				{9, 20, `http_path: "health" must start with '/'`},
				{10, 40, "http_statuses: must be between 100 and 999, got 1000"},
				{10, 58, "successes: must be between 0 and 255, got 256"},
				{12, 36, "http_statuses: expected a list, got integer 500"},
				{14, 28, "max_ejection_time: max_ejection_time 30s is less than base_ejection_time 1m0s"},
			},
		},

		// Services.
		{
			desc: "service needs host or url",
			src: `services:
  - name: s
    port: 80
`,
			want: []wantErr{{2, 5, "service: host or url is required"}},
		},
		{
			desc: "url conflicts with host, port, protocol and path",
			src: `services:
  - name: s
    url: http://h:8080/
    host: h
    port: 81
    protocol: https
    path: /x
`,
			want: []wantErr{
				{4, 5, "host: url conflicts with host"},
				{5, 5, "port: url conflicts with port"},
				{6, 5, "protocol: url conflicts with protocol"},
				{7, 5, "path: url conflicts with path"},
			},
		},
		{
			desc: "bad urls",
			src: `services:
  - name: a
    url: ftp://h/
  - name: b
    url: http://h:0/
  - name: c
    url: http://h/?q=1
  - name: d
    url: /just/a/path
  - name: e
    url: "http://[::1"
`,
			want: []wantErr{
				{3, 10, `url: "ftp://h/": scheme must be one of http, https, grpc, grpcs, h2c`},
				{5, 10, "port 0 is out of range 1..65535"},
				{7, 10, "a query string is not supported"},
				{9, 10, "scheme must be one of http, https, grpc, grpcs, h2c"},
				{11, 10, `url: invalid URL "http://[::1": parse "http://[::1": missing ']' in host`},
			},
		},
		{
			desc: "bad service fields",
			src: `services:
  - name: s
    host: "bad host"
    protocol: tcp
    path: api
    retries: 40000
    connect_timeout: 0
    read_timeout: 2147483647
    write_timeout: 1.5
`,
			want: []wantErr{
				{3, 11, `host: invalid host "bad host"`},
				{4, 15, `protocol: "tcp" is not valid; expected one of: http, https, grpc, grpcs, h2c`},
				{5, 11, `path: "api" must start with '/'`},
				{6, 14, "retries: must be between 0 and 32767, got 40000"},
				{7, 22, "connect_timeout: must be between 1 and 2147483646, got 0"},
				{8, 19, "read_timeout: must be between 1 and 2147483646, got 2147483647"},
				{9, 20, "write_timeout: expected an integer, got float 1.5"},
			},
		},

		{
			desc: "bad upstream TLS and gRPC fields",
			src: `services:
  - name: plain
    host: h
    tls_verify: true
    client_certificate: {cert_file: a, key_file: b}
  - name: secure
    protocol: grpcs
    host: h
    tls_verify_depth: 65
    ca_certificates: [/nonexistent/ca.pem]
    client_certificate: {cert_file: a}
    grpc_idempotent_methods: [Say, /pkg.Svc/*]
  - name: mixed
    host: h
    routes:
      - name: r
        paths: [/]
        protocols: [grpc, http]
      - name: r2
        paths: [/x]
        protocols: [tcp]
upstreams:
  - name: u
    healthchecks:
      passive:
        unhealthy: {grpc_statuses: [14, 17]}
`,
			want: []wantErr{
				{4, 5, "tls_verify: only allowed when protocol is https or grpcs (protocol is http)"},
				{5, 5, "client_certificate: only allowed when protocol is https or grpcs"},
				{9, 23, "tls_verify_depth: must be between 0 and 64, got 65"},
				{10, 5, `ca_certificates: open /nonexistent/ca.pem: no such file or directory`},
				{11, 25, "client_certificate: cert_file and key_file are both required"},
				{12, 31, `grpc_idempotent_methods: "Say": expected /package.Service/Method or /package.Service/*`},
				{18, 20, "protocols: http/https and grpc/grpcs are mutually exclusive"},
				{21, 21, `protocols: "tcp" is not one of http, https, grpc, grpcs`},
				{26, 41, "grpc_statuses: must be between 0 and 16, got 17"},
			},
		},

		// Routes.
		{
			desc: "route without matchers",
			src: `services:
  - name: s
    host: h
    routes:
      - name: r
        strip_path: false
      - name: r2
        paths: []
`,
			want: []wantErr{
				{5, 9, "route: at least one of paths, hosts, methods or headers is required"},
				{7, 9, "route: at least one of paths, hosts, methods or headers is required"},
			},
		},
		{
			desc: "bad paths",
			src: `services:
  - name: s
    host: h
    routes:
      - name: r
        paths: ["~/users/(\\d+$", api, "~", /a, /a]
`,
			want: []wantErr{
				{6, 17, `paths: invalid regular expression "/users/(\\d+$": error parsing regexp: missing closing )`},
				{6, 35, `paths: "api" must start with '/' (or '~' for a regular expression)`},
				{6, 40, "paths: empty regular expression after '~'"},
				{6, 49, `paths: duplicate "/a" (first at line 6)`},
			},
		},
		{
			desc: "bad hosts",
			src: `services:
  - name: s
    host: h
    routes:
      - name: r
        hosts:
          - "*.*.example.com"
          - foo.*.com
          - "*"
          - example.com:99999
          - ::1
          - bad!host
          - EXAMPLE.com
          - example.COM
`,
			want: []wantErr{
				{7, 13, "a wildcard must be a whole label at the start"},
				{8, 13, "a wildcard must be a whole label"},
				{9, 13, "a wildcard must be a whole label"},
				{10, 13, "port 99999 is out of range 1..65535"},
				{11, 13, "IPv6 addresses must be written in brackets"},
				{12, 13, `hosts: "bad!host" is not a valid host`},
				{14, 13, `hosts: duplicate "example.com" (first at line 13)`},
			},
		},
		{
			desc: "bad methods and headers",
			src: `services:
  - name: s
    host: h
    routes:
      - name: r
        methods: ["GE T", get, GET]
        headers:
          Host: [a]
          "bad header": [x]
          x-a: []
          X-B: v
          x-b: w
      - name: r2
        headers: [x-a]
`,
			want: []wantErr{
				{6, 19, `methods: "GE T" is not a valid token`},
				{6, 32, `methods: duplicate "GET" (first at line 6)`},
				{8, 11, "headers: use hosts to match the Host header"},
				{9, 11, "headers: invalid header name"},
				{10, 16, "x-a: at least one value is required"},
				{12, 11, `headers: duplicate header "x-b" (first at line 11)`},
				{14, 18, "headers: expected a mapping of header name to values, got a list"},
			},
		},
		{
			desc: "route service references",
			src: `services:
  - name: s
    host: h
    routes:
      - name: nested
        service: s
        paths: [/n]
routes:
  - name: unknown
    service: nope
    paths: [/u]
  - name: orphan
    paths: [/o]
`,
			want: []wantErr{
				{6, 9, `service: not allowed in a route nested in a service (it belongs to service "s")`},
				{10, 14, `service: unknown service "nope"`},
				// orphan has no service, as Kong allows.
			},
		},
		{
			desc: "route flags",
			src: `routes:
  - name: r
    service: s
    paths: [/]
    strip_path: 1
    preserve_host: "false"
    regex_priority: high
services:
  - name: s
    host: h
`,
			want: []wantErr{
				{5, 17, "strip_path: expected a boolean (true or false), got integer 1"},
				{6, 20, `preserve_host: expected a boolean (true or false), got string "false"`},
				{7, 21, `regex_priority: expected an integer, got string "high"`},
			},
		},
		{
			desc: "route path_handling",
			src: `routes:
  - name: r
    service: s
    paths: [/]
    path_handling: v2
  - name: q
    service: s
    paths: [/q]
    path_handling: [v1]
services:
  - name: s
    host: h
`,
			want: []wantErr{
				{5, 20, `path_handling: "v2" is not valid; expected one of: v0, v1`},
				{9, 20, `path_handling: expected a string, got a list`},
			},
		},

		// Proxy and admin.
		{
			desc: "listen addresses",
			src: `proxy:
  listen: 127.0.0.1
  max_idle_conns_per_host: 100001
admin:
  listen: 127.0.0.1:8000
  port: 1
`,
			want: []wantErr{
				{2, 11, `listen: "127.0.0.1" is not host:port`},
				{3, 28, "max_idle_conns_per_host: must be between 0 and 100000, got 100001"},
				{6, 3, `unknown field "port" in admin; expected one of: listen, token, state_file, store, consul`},
			},
		},
		{
			desc: "admin on the proxy's address",
			src: `proxy:
  listen: 0.0.0.0:8000
admin:
  listen: 0.0.0.0:8000
  token: t
`,
			want: []wantErr{{4, 11, "listen: the admin API cannot listen on the proxy's address 0.0.0.0:8000"}},
		},
		{
			desc: "nacos registration with weight 0",
			src: `register:
  nacos: {servers: [127.0.0.1:8848], service: web, ip: 127.0.0.1, port: 80, weight: 0}
`,
			want: []wantErr{{2, 85, "weight: must be greater than 0"}},
		},
		{
			desc: "unknown active check type",
			src: `upstreams:
  - name: u
    healthchecks:
      active: {type: grcp}
`,
			want: []wantErr{{4, 22, `type: "grcp" is not valid; expected one of: http, https, tcp, grpc, grpcs`}},
		},
		{
			desc: "grpc_service on an http check, and one with a space",
			src: `upstreams:
  - name: u
    healthchecks:
      active:
        grpc_service: pkg.Echo
  - name: v
    healthchecks:
      active: {type: grpc, grpc_service: "pkg Echo"}
`,
			want: []wantErr{
				{5, 9, "grpc_service: only used by checks of type grpc or grpcs (type is http)"},
				{8, 42, `grpc_service: "pkg Echo": no spaces or control characters`},
			},
		},
		{
			desc: "consul grpc check without a port",
			src: `register:
  consul:
    service: {name: web, port: 80}
    check: {grpc: "localhost/pkg.Echo"}
`,
			want: []wantErr{{4, 19, `grpc: "localhost" is not host:port`}},
		},
		{
			desc: "consul check with grpc and http",
			src: `register:
  consul:
    service: {name: web, port: 80}
    check:
      grpc: 127.0.0.1:9090
      http: http://127.0.0.1/health
`,
			want: []wantErr{{5, 7, "check: give exactly one of http, tcp, grpc or ttl"}},
		},
		{
			desc: "grpc_use_tls without a grpc check",
			src: `register:
  consul:
    service: {name: web, port: 80}
    check: {tcp: 127.0.0.1:80, grpc_use_tls: true}
`,
			want: []wantErr{{4, 32, "grpc_use_tls: only used by a grpc check"}},
		},
		{
			desc: "nacos check with neither probe",
			src: `register:
  nacos:
    servers: [127.0.0.1:8848]
    service: web
    ip: 127.0.0.1
    port: 80
    check: {interval: 1s}
`,
			want: []wantErr{{7, 12, "check: give exactly one of grpc or health_url"}},
		},
		{
			desc: "nacos check with a relative health_url",
			src: `register:
  nacos:
    servers: [127.0.0.1:8848]
    service: web
    ip: 127.0.0.1
    port: 80
    check: {health_url: /health}
`,
			want: []wantErr{{7, 25, `health_url: "/health": want an http:// or https:// URL`}},
		},
		{
			desc: "negative initial_fetch_timeout",
			src: `upstreams:
  - name: u
    discovery:
      consul: {service: web}
      initial_fetch_timeout: -1s
`,
			want: []wantErr{{5, 30, "initial_fetch_timeout: must not be negative, got -1s"}},
		},
		{
			desc: "admin on a non-loopback address without a token",
			src: `admin:
  listen: 0.0.0.0:8001
`,
			want: []wantErr{{2, 11, "listen: the admin API on a non-loopback address needs admin.token"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			checkErrors(t, tt.src, tt.env, tt.want)
		})
	}
}

func TestMultipleErrors(t *testing.T) {
	// Errors are found in decoding order (route names are only checked at
	// the end) but reported sorted by position.
	src := `routes:
  - name: dup
    service: s
    paths: [/a]
services:
  - name: s
    host: h
    port: http
    routes:
      - name: dup
        paths: [/b]
upstreams:
  - name: u
    bogus: true
    targets:
      - target: 10.0.0.1:80
        weight: 1e3
log:
  level: ${LOG_LEVEL}
`
	_, err := Parse("multi.yaml", []byte(src), envOf(nil))
	want := strings.Join([]string{
		`multi.yaml:8:11: port: expected an integer, got string "http"`,
		`multi.yaml:10:15: name: duplicate route name "dup" (first defined at line 2)`,
		`multi.yaml:14:5: unknown field "bogus" in upstream; expected one of: name, algorithm, hash_on, hash_fallback, hash_on_header, hash_on_cookie, hash_on_cookie_path, hash_on_query_arg, hash_on_uri_capture, slots, tags, sticky_sessions_cookie, sticky_sessions_cookie_ttl, slow_start, panic, circuit_breakers, retry_budget, retry_policy, healthchecks, discovery, targets, id, created_at, updated_at, ws_id, host_header, client_certificate, use_srv_name, sticky_sessions_cookie_path, hash_fallback_header, hash_fallback_query_arg, hash_fallback_uri_capture`,
		`multi.yaml:17:17: weight: expected an integer, got float 1e3`,
		`multi.yaml:19:10: level: environment variable LOG_LEVEL is not set (use ${LOG_LEVEL:-default} to give a default)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	var e Error
	if !errors.As(err, &e) || e.Line != 8 {
		t.Errorf("errors.As(Error) = %+v", e)
	}
}

func TestErrorRendering(t *testing.T) {
	tests := []struct {
		desc string
		err  Error
		want string
	}{
		{desc: "full position", err: Error{File: "a.yaml", Line: 3, Col: 7, Msg: "bad"}, want: "a.yaml:3:7: bad"},
		{desc: "line only", err: Error{File: "a.yaml", Line: 3, Msg: "bad"}, want: "a.yaml:3: bad"},
		{desc: "no position", err: Error{File: "a.yaml", Msg: "bad"}, want: "a.yaml: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFileErrorf(t *testing.T) {
	f := mustParse(t, exampleFile, nil)
	var all ErrorList
	if all.Err() != nil {
		t.Fatal("empty ErrorList.Err() != nil")
	}
	all.Add(f.Errorf(f.Routes[0].Pos, "route %q: no such thing", f.Routes[0].Name))
	all.Add(f.Errorf(f.Upstreams[0].Targets[1].Pos, "target unreachable"))
	all.Add(nil)
	want := "test.yaml:11:9: target unreachable\ntest.yaml:24:9: route \"mock\": no such thing"
	if err := all.Err(); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestLargeFileWithoutAliases: a 10 MB file of more than a million nodes,
// none of them from an alias, is accepted; the expansion limit is for
// aliases only.
func TestLargeFileWithoutAliases(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstreams:\n  - name: big\n    targets:\n")
	n := 0
	for b.Len() < 10<<20 {
		fmt.Fprintf(&b, "      - {target: 10.%d.%d.%d:80, weight: 1, tags: [a, b]}\n", n>>16&255, n>>8&255, n&255)
		n++
	}
	f, err := Parse("big.yaml", []byte(b.String()), nil)
	if err != nil {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300]
		}
		t.Fatalf("Parse of a %d-byte file with %d targets: %s", b.Len(), n, msg)
	}
	if got := len(f.Upstreams[0].Targets); got != n {
		t.Fatalf("%d targets, want %d", got, n)
	}
}
