package config

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		exampleFile,
		"proxy: {listen: \"${L:-:8000}\", max_body_size: 10MB}\nlog: {level: debug}\n",
		`upstreams:
  - name: u
    hash_on: header
    hash_on_header: X-User
    slow_start: {window: 1s}
    healthchecks:
      active: {healthy: {}, unhealthy: {http_statuses: [500]}}
      passive: {unhealthy: {timeouts: 1}, max_ejection_time: 1s, base_ejection_time: 2s}
    targets: [{target: "[::1]:80", weight: 0, tags: [a]}]
services:
  - &s {name: s, url: "https://h/p", routes: [{name: r, paths: ["~^/a$"], headers: {x: y}}]}
  - <<: *s
    name: t
routes:
  - {name: r2, service: s, hosts: ["*.a.b:80"], methods: [get]}
`,
		"upstreams: &a [*a]\n",
		"a: &a {<<: *a}\n",
		"proxy:\n  listen: [oops\n",
		"- 1\n- 2\n",
		"---\na: 1\n---\nb: 2\n",
		"services:\n  - name: s\n    host: h\n    port: ${P}\n",
		"proxy:\n  listen: \"a\xffb\"\n",
		"log:\n  level: info\n  \x07format: json\n",
		"proxy: a: b\n",
		"\tproxy: {}\n",
		"log:\n  level: 'info\n",
		"consumers: [{username: a, keyauth_credentials: [{key: k}]}]\nplugins:\n  - {name: rate-limiting, consumer: a, config: {minute: ${P}, redis: {host: x}}}\n  - name: request-transformer\n    config: {add: {headers: [\"a:b\"]}, remove: &r {querystring: [q]}, rename: *r}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	env := envOf(map[string]string{"P": "80", "L": "127.0.0.1:0"})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data, env)
		if err == nil {
			if file == nil {
				t.Fatal("nil File without error")
			}
			return
		}
		if file != nil {
			t.Fatal("File returned with an error")
		}
		var list *ErrorList
		if !errors.As(err, &list) || len(list.Errors) == 0 {
			t.Fatalf("error %T %v is not a non-empty *ErrorList", err, err)
		}
		for i, e := range list.Errors {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("malformed error %+v", e)
			}
			if e.Line < 1 || e.Col < 1 {
				t.Fatalf("error without a line and column: %v", e)
			}
			if i > 0 {
				p := list.Errors[i-1]
				if p.Line > e.Line || p.Line == e.Line && p.Col > e.Col {
					t.Fatalf("errors not sorted: %v", err)
				}
			}
		}
	})
}
