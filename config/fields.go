package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The entities' fields, stated once as data (as pluginschema.go does for
// the plugins' configs): each field's name, type, bounds, allowed values,
// check, documentation and place in the entity type. The file's decoder
// (parse.go), the admin API's JSON and form decoders and its OpenAPI
// document interpret the same table, each rendering its own messages;
// defaults are the entity type's default value (a Schema's New). What a
// table cannot say (objects, references, shorthands such as a service's
// url) is a FieldCustom entry: named, documented, decoded by each
// decoder's own code. Checks across fields are the entity's Validate.

// FieldType is how a field's value is written and held.
type FieldType int

// The field types, with the Go type At points to.
const (
	FieldString  FieldType = iota // *string; OneOf or Check
	FieldInt                      // *int in Min..Max
	FieldOptInt                   // **int in Min..Max; null unsets
	FieldMillis                   // *Millis: an integer of milliseconds in Min..Max
	FieldBool                     // *bool
	FieldOptBool                  // **bool; null unsets
	FieldStrings                  // *[]string: strings each normalised by Check, distinct
	FieldTexts                    // *[]string: free text (the file keeps duplicates, the API refuses them)
	FieldTags                     // *[]string: tags (CheckTag), distinct
	FieldFloat                    // *float64 in Min..Max
	FieldInts                     // *[]int: integers each in Min..Max
	// FieldSeconds and FieldDuration point to a *time.Duration, *Duration
	// or *Seconds, bounded by Min..Max in nanoseconds (Max 0: no bound).
	// A FieldSeconds is a number of seconds to the file and to the admin
	// API; a FieldDuration is a duration ("30s") to the file and a number
	// of seconds to the admin API.
	FieldSeconds
	FieldDuration
	FieldCustom // decoded by each decoder's own code
)

// FieldSpec is what a decoder needs to know of a field, whatever the
// entity.
type FieldSpec struct {
	Name string
	Type FieldType
	// Min and Max bound FieldInt, FieldOptInt, FieldMillis and
	// FieldFloat.
	Min, Max int64
	// OneOf lists a FieldString's values.
	OneOf []string
	// Check normalises a FieldString or each item of a FieldStrings, or
	// says why the value is refused.
	Check func(string) (string, error)
	// CheckInt checks a FieldInt within its bounds further.
	CheckInt func(int) error
	// CheckList checks a FieldStrings as a whole, its items checked.
	CheckList func([]string) error
	// Nullable: the file takes null as unset (Kong's null), as the
	// admin API does for every field.
	Nullable bool
	// Where the decoders disagree: FilePositive, the file refuses 0 (a
	// FieldSeconds or FieldDuration) where the admin API takes it (none,
	// or the default applied when the upstream is resolved); APIZeroNull,
	// the admin API's null sets the zero value, not New's; FileOnly, the
	// admin API does not take the field (its layer does not store it).
	FilePositive, APIZeroNull, FileOnly bool
	// Doc describes the field (the OpenAPI document).
	Doc string
}

// Field is a field of entity type T: its spec and where it lives in a T
// (At returns a pointer of the type FieldType names).
type Field[T any] struct {
	FieldSpec
	At func(*T) any
}

// Schema is an entity type's fields, in the order the file's messages
// list them, and its defaults.
type Schema[T any] struct {
	Kind   string
	Fields []Field[T]
	// New returns an entity with every default filled in.
	New func() T
	// FileBare, when set, is the file's defaults for a block that gives
	// none of its fields but the FieldInts lists (the admin API keeps
	// New's).
	FileBare func(*T)
}

// Field returns the field of that name.
func (s *Schema[T]) Field(name string) (*Field[T], bool) {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i], true
		}
	}
	return nil, false
}

// NullableFields are the fields that take null as unset.
func (s *Schema[T]) NullableFields() []string {
	var out []string
	for _, f := range s.Fields {
		if f.Nullable {
			out = append(out, f.Name)
		}
	}
	return out
}

// schemaBounds are the ranges of a schema's integer fields (but those
// CheckInt narrows to a set of values).
func schemaBounds[T any](s *Schema[T]) []Bound {
	var out []Bound
	for _, f := range s.Fields {
		if f.CheckInt != nil {
			continue
		}
		switch f.Type {
		case FieldInt, FieldOptInt, FieldMillis, FieldFloat:
			out = append(out, Bound{s.Kind, f.Name, float64(f.Min), float64(f.Max)})
		}
	}
	return out
}

// keepValue turns a check into a Check that keeps the value.
func keepValue(check func(string) error) func(string) (string, error) {
	return func(s string) (string, error) { return s, check(s) }
}

// Problem is one thing wrong with an entity as a whole, found by its
// Validate: Field is the path of the field it concerns ("" for the
// entity as a whole), Msg why. Detail,
// when set, is a clause the file's messages add in parentheses ("protocol
// is http").
type Problem struct {
	Field, Msg, Detail string
	// Because names the fields whose values make Field's wrong
	// ("protocol"); none when Field's own value does.
	Because []string
	// Got and Bound are, for a duration under another field's value
	// (Because[0]), the two values, for the decoders that word them in
	// their own unit.
	Got, Bound time.Duration
}

// ProblemsError joins problems into one error, "field: msg; ...".
func ProblemsError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Field + ": " + p.Msg
	}
	return errors.New(strings.Join(parts, "; "))
}

// ServiceSchema is the service's fields.
func ServiceSchema() *Schema[Service] {
	type f = Field[Service]
	timeout := "milliseconds, default " + fmt.Sprint(DefaultTimeout.Milliseconds())
	return &Schema[Service]{Kind: KindService, New: defaultService, Fields: []f{
		{FieldSpec{Name: "name", Check: keepValue(CheckName), Doc: "1..128 of letters, digits, '.', '_', '~', '-'"},
			func(s *Service) any { return &s.Name }},
		{FieldSpec{Name: "host", Check: NormalizeServiceHost, Doc: "an upstream's name, or a host name or IP address"},
			func(s *Service) any { return &s.Host }},
		{FieldSpec{Name: "port", Type: FieldInt, Min: MinPort, Max: MaxPort,
			Doc: fmt.Sprintf("default %d (%d for https and grpcs)", DefaultPort(ProtocolHTTP), DefaultPort(ProtocolHTTPS))},
			func(s *Service) any { return &s.Port }},
		{FieldSpec{Name: "protocol", OneOf: ServiceProtocols(),
			Doc: "default " + ProtocolHTTP + "; h2c, grpc: HTTP/2 with prior knowledge; grpcs: HTTP/2 over TLS"},
			func(s *Service) any { return &s.Protocol }},
		{FieldSpec{Name: "tls_verify", Type: FieldOptBool, Nullable: true,
			Doc: "https/grpcs only: verify the target's certificate; default null (on; Kong's default is off)"},
			func(s *Service) any { return &s.TLSVerify }},
		{FieldSpec{Name: "tls_verify_depth", Type: FieldOptInt, Min: 0, Max: MaxTLSVerifyDepth, Nullable: true,
			Doc: "https/grpcs only: most certificates above the leaf"},
			func(s *Service) any { return &s.TLSVerifyDepth }},
		{FieldSpec{Name: "ca_certificates", Type: FieldTexts, Nullable: true,
			Doc: "https/grpcs only: PEM file paths or inline PEM of the trusted CAs (Kong takes CA certificate ids); null: the system roots"},
			func(s *Service) any { return &s.CACertificates }},
		{FieldSpec{Name: "client_certificate", Type: FieldCustom, Nullable: true,
			Doc: "https/grpcs only: cert_file and key_file, the PEM files presented to targets asking for a certificate"},
			func(s *Service) any { return &s.ClientCertificate }},
		{FieldSpec{Name: "grpc_idempotent_methods", Type: FieldStrings, Check: keepValue(CheckGRPCMethod), Nullable: true,
			Doc: "gRPC methods retried on another target after UNAVAILABLE: /package.Service/Method or /package.Service/*"},
			func(s *Service) any { return &s.GRPCIdempotentMethods }},
		{FieldSpec{Name: "path", Check: keepValue(checkPath), Nullable: true, Doc: "prefix added to upstream requests"},
			func(s *Service) any { return &s.Path }},
		{FieldSpec{Name: "retries", Type: FieldInt, Min: 0, Max: MaxRetries, Doc: "default " + fmt.Sprint(DefaultRetries)},
			func(s *Service) any { return &s.Retries }},
		{FieldSpec{Name: "tags", Type: FieldTags, Nullable: true}, func(s *Service) any { return &s.Tags }},
		{FieldSpec{Name: "connect_timeout", Type: FieldMillis, Min: MinTimeoutMs, Max: MaxTimeoutMs, Doc: timeout},
			func(s *Service) any { return &s.ConnectTimeout }},
		{FieldSpec{Name: "read_timeout", Type: FieldMillis, Min: MinTimeoutMs, Max: MaxTimeoutMs, Doc: timeout},
			func(s *Service) any { return &s.ReadTimeout }},
		{FieldSpec{Name: "write_timeout", Type: FieldMillis, Min: MinTimeoutMs, Max: MaxTimeoutMs, Doc: timeout},
			func(s *Service) any { return &s.WriteTimeout }},
		{FieldSpec{Name: "url", Type: FieldCustom, Nullable: true,
			Doc: "shorthand for protocol, host, port and path: http://host:port/path"},
			func(s *Service) any { return nil }},
	}}
}

// ClientCertificateSchema is the fields of a service's
// client_certificate, both required.
func ClientCertificateSchema() *Schema[ClientCertificate] {
	type f = Field[ClientCertificate]
	return &Schema[ClientCertificate]{Kind: "client_certificate", New: func() ClientCertificate { return ClientCertificate{} }, Fields: []f{
		{FieldSpec{Name: "cert_file", Doc: "PEM certificate (chain) file"}, func(c *ClientCertificate) any { return &c.CertFile }},
		{FieldSpec{Name: "key_file", Doc: "PEM private key file"}, func(c *ClientCertificate) any { return &c.KeyFile }},
	}}
}

// tlsOnly is why a TLS setting is refused on a plaintext service.
const tlsOnly = "only allowed when protocol is https or grpcs"

// Validate checks a service as a whole and reports every problem: its TLS
// settings apply to https and grpcs only, and the material they name must
// load (it is read again when the service is built).
func (s *Service) Validate() []Problem {
	var out []Problem
	if !TLSProtocol(s.Protocol) {
		for _, set := range []struct {
			field string
			set   bool
		}{{"tls_verify", s.TLSVerify != nil}, {"tls_verify_depth", s.TLSVerifyDepth != nil},
			{"ca_certificates", s.CACertificates != nil}, {"client_certificate", s.ClientCertificate != nil}} {
			if set.set {
				out = append(out, Problem{Field: set.field, Msg: tlsOnly, Detail: "protocol is " + s.Protocol, Because: []string{"protocol", "url"}})
			}
		}
	}
	if len(s.CACertificates) > 0 {
		if _, err := LoadServiceTLS(&Service{CACertificates: s.CACertificates}); err != nil {
			out = append(out, Problem{Field: "ca_certificates", Msg: strings.TrimPrefix(err.Error(), "ca_certificates: ")})
		}
	}
	if s.ClientCertificate != nil {
		if _, err := LoadServiceTLS(&Service{ClientCertificate: s.ClientCertificate}); err != nil {
			out = append(out, Problem{Field: "client_certificate", Msg: strings.TrimPrefix(err.Error(), "client_certificate: ")})
		}
	}
	return out
}

// RouteSchema is the route's fields.
func RouteSchema() *Schema[Route] {
	type f = Field[Route]
	return &Schema[Route]{Kind: KindRoute, New: defaultRoute, Fields: []f{
		{FieldSpec{Name: "name", Check: keepValue(CheckName), Doc: "1..128 of letters, digits, '.', '_', '~', '-'"},
			func(r *Route) any { return &r.Name }},
		{FieldSpec{Name: "tags", Type: FieldTags, Nullable: true}, func(r *Route) any { return &r.Tags }},
		{FieldSpec{Name: "service", Type: FieldCustom}, func(r *Route) any { return &r.Service }},
		{FieldSpec{Name: "paths", Type: FieldStrings, Check: keepValue(CheckRoutePath), Nullable: true,
			Doc: "prefixes, or regular expressions after '~' (form: paths[]=/a or repeated paths=/a)"},
			func(r *Route) any { return &r.Paths }},
		{FieldSpec{Name: "hosts", Type: FieldStrings, Check: NormalizeRouteHost, Nullable: true,
			Doc: "host names, one wildcard label at either end allowed"},
			func(r *Route) any { return &r.Hosts }},
		{FieldSpec{Name: "methods", Type: FieldStrings, Nullable: true, Doc: "HTTP methods",
			Check: func(s string) (string, error) { return strings.ToUpper(s), CheckToken(s) }},
			func(r *Route) any { return &r.Methods }},
		{FieldSpec{Name: "headers", Type: FieldCustom, Nullable: true, Doc: "header name → values"},
			func(r *Route) any { return &r.Headers }},
		{FieldSpec{Name: "strip_path", Type: FieldBool, Doc: "default true"}, func(r *Route) any { return &r.StripPath }},
		{FieldSpec{Name: "preserve_host", Type: FieldBool, Doc: "default false"}, func(r *Route) any { return &r.PreserveHost }},
		{FieldSpec{Name: "regex_priority", Type: FieldInt, Min: MinRegexPriority, Max: MaxRegexPriority, Doc: "order of regex paths"},
			func(r *Route) any { return &r.RegexPriority }},
		{FieldSpec{Name: "path_handling", OneOf: PathHandlings(),
			Doc: "default " + DefaultPathHandling + ": how the service path and the request path combine upstream, as Kong's"},
			func(r *Route) any { return &r.PathHandling }},
		{FieldSpec{Name: "https_redirect_status_code", Type: FieldInt, Min: MinHTTPStatus, Max: MaxHTTPStatus, CheckInt: CheckHTTPSRedirect,
			Doc: "a plaintext request to a route whose protocols are [https]: 426 (the default) refuses it, the others redirect it to https"},
			func(r *Route) any { return &r.HTTPSRedirectStatusCode }},
		{FieldSpec{Name: "protocols", Type: FieldStrings, Nullable: true, CheckList: CheckRouteProtocols,
			Check: func(p string) (string, error) {
				p = strings.ToLower(p)
				if !slices.Contains(RouteProtocols(), p) {
					return p, fmt.Errorf("%s is not one of %s", quote(p), strings.Join(RouteProtocols(), ", "))
				}
				return p, nil
			},
			Doc: "default [http, https]; grpc/grpcs (not mixed with http/https): gRPC over HTTP/2 only, a non-gRPC request gets 415, gRPC over HTTP/1.1 426"},
			func(r *Route) any { return &r.Protocols }},
	}}
}

// NoMatcher is why a route that matches nothing is refused.
const NoMatcher = "at least one of paths, hosts, methods or headers is required"

// Validate checks a route as a whole and reports every problem: it needs
// a matcher.
func (r *Route) Validate() []Problem {
	if len(r.Paths) == 0 && len(r.Hosts) == 0 && len(r.Methods) == 0 && len(r.Headers) == 0 {
		return []Problem{{Msg: NoMatcher, Because: []string{"paths", "hosts", "methods", "headers"}}}
	}
	return nil
}
