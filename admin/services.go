package admin

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// serviceOut is a service in Kong's shape. Name is null for a service
// created without one.
type serviceOut struct {
	ID             string  `json:"id"`
	Name           *string `json:"name"`
	Protocol       string  `json:"protocol"`
	Host           string  `json:"host"`
	Port           int     `json:"port"`
	Path           *string `json:"path"`
	Retries        int     `json:"retries"`
	ConnectTimeout int     `json:"connect_timeout"`
	ReadTimeout    int     `json:"read_timeout"`
	WriteTimeout   int     `json:"write_timeout"`
	// Kong's TLS fields; null when unset (ca_certificates holds PEM file
	// paths or inline PEM, client_certificate cert_file and key_file).
	TLSVerify             *bool                    `json:"tls_verify"`
	TLSVerifyDepth        *int                     `json:"tls_verify_depth"`
	CACertificates        []string                 `json:"ca_certificates"`
	ClientCertificate     *state.ClientCertificate `json:"client_certificate"`
	GRPCIdempotentMethods []string                 `json:"grpc_idempotent_methods"`
	Tags                  []string                 `json:"tags"`
	CreatedAt             int64                    `json:"created_at"`
	UpdatedAt             int64                    `json:"updated_at"`
}

func ms(d time.Duration) int { return int(d / time.Millisecond) }

// shownName hides the name of an entity created without one (its name is
// its id).
func shownName(name string, m state.Meta) *string {
	if sameID(name, m.ID) {
		return nil
	}
	return &name
}

// nameKey is the paging key of an entity that may have no name.
func nameKey(name *string, id string) string {
	if name == nil {
		return id
	}
	return *name
}

func renderService(s *config.Service, m state.Meta) serviceOut {
	out := serviceOut{
		ID: m.ID, Name: shownName(s.Name, m), Protocol: s.Protocol, Host: s.Host, Port: s.Port, Path: strOrNil(s.Path),
		Retries: s.Retries, ConnectTimeout: ms(s.ConnectTimeout.D()), ReadTimeout: ms(s.ReadTimeout.D()), WriteTimeout: ms(s.WriteTimeout.D()),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, CACertificates: s.CACertificates, GRPCIdempotentMethods: s.GRPCIdempotentMethods,
		Tags: tagsOut(s.Tags),
	}
	out.TLSVerify, out.TLSVerifyDepth, out.ClientCertificate = serviceTLSOf(s)
	return out
}

// serviceTLSOf returns a service's TLS settings in the API's shape (null
// for the defaults: verify, no depth cap, no client certificate).
func serviceTLSOf(s *config.Service) (*bool, *int, *state.ClientCertificate) {
	v := s.TLSVerify
	var d *int
	var cc *state.ClientCertificate
	if s.VerifyDepth() > 0 {
		d = ptr(s.VerifyDepth())
	}
	if c := s.ClientCertificate; c != nil {
		cc = ptr(*c)
	}
	return v, d, cc
}

// newService is a service with Kong's defaults (port is set later, from
// the protocol, when the body names none).
func newService() state.Service { return config.DefaultService() }

// decodeService applies a body to s. creating fills the port from the
// protocol when the body gives neither port nor url.
func decodeService(o *obj, s *state.Service, creating bool) {
	decodeFields(o, config.ServiceSchema(), s, map[string]func(string) (string, error){"path": checkPath})
	if len(s.CACertificates) == 0 {
		s.CACertificates = nil // none: as absent (Validate)
	}
	hasURL := false
	if v, present := o.get("url"); present && v != nil {
		str, why := asString(v)
		if why != "" {
			o.fail("url", "%s", why)
		} else if u, err := config.ParseServiceURL(str); err != nil {
			var bad *config.URLError
			if errors.As(err, &bad) {
				err = fmt.Errorf("invalid URL %q", str)
			}
			o.fail("url", "%v", err)
		} else {
			hasURL = true
			for _, k := range []string{"protocol", "host", "port", "path"} {
				if o.has(k) {
					o.fail(k, "conflicts with url (set either url or protocol, host, port and path)")
				}
			}
			s.Protocol, s.Host, s.Port, s.Path = u.Protocol, u.Host, u.Port, u.Path
		}
	}
	if v, present := o.m["port"]; s.Port == 0 || (creating && !hasURL && (!present || v == nil || v == formValue(""))) {
		s.Port = config.DefaultPort(s.Protocol)
	}
	decodeClientCertificate(o, s)
	o.kongFields(config.KindService)
	o.unknown()
}

// serviceDecoder checks a body in full and returns its applier.
// The applier also checks the result as a whole (Validate).
func serviceDecoder(b *obj) (func(s *state.Service, creating bool) error, error) {
	decode := func(s *state.Service, creating bool) error {
		return b.decode(func(o *obj) { decodeService(o, s, creating) })
	}
	scratch := newService()
	if err := decode(&scratch, true); err != nil {
		return nil, err
	}
	return func(s *state.Service, creating bool) error {
		if err := decode(s, creating); err != nil {
			return err
		}
		return problemsError(s.Validate(), nil)
	}, nil
}

// editableService returns a copy of an effective service in the admin
// layer's shape.
func (w *world) editableService(name string) *state.Service {
	if d, ok := w.doc.Services[name]; ok && !d.Deleted {
		s := *d
		if s.ID == "" {
			s.ID = w.k.service.fileID(w, name)
		}
		return &s
	}
	e, _ := w.eff.Service(name)
	s := ptr(*e)
	s.Pos, s.Meta, s.Tags = config.Pos{}, w.k.service.fileMeta(w, name), slices.Clone(e.Tags)
	s.TLSVerify, s.TLSVerifyDepth, s.ClientCertificate = serviceTLSOf(e)
	return s
}

// editableRoute returns a copy of an effective route in the admin layer's
// shape.
func (w *world) editableRoute(name string) *state.Route {
	if d, ok := w.doc.Routes[name]; ok && !d.Deleted {
		r := d.Clone()
		if r.ID == "" {
			r.ID = w.k.route.fileID(w, name)
		}
		return r
	}
	e, _, _ := w.route(name)
	r := e.Clone()
	r.Pos, r.Meta = config.Pos{}, w.k.route.fileMeta(w, name)
	return r
}

// routesOf lists the effective routes of a service, by name.
func (w *world) routesOf(service string) []string {
	var out []string
	for _, r := range w.eff.Routes {
		if r.Service == service {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return out
}

// putService stores s under its name; a rename (from old) needs a free
// name and carries the routes, canary and rollout along.
func (w *world) putService(old string, s *state.Service, now int64) error {
	s.Deleted = false
	if c := w.doc.Canaries[old]; c != nil && c.Upstream == s.Host {
		return fieldError("host", "'%s' is the canary upstream of this service: delete or change the canary first", s.Host)
	}
	if old != "" && s.Name != old {
		if w.k.service.keyTaken(w, s.Name) {
			return uniqueViolation("name", s.Name)
		}
		for _, rn := range w.routesOf(old) {
			r := w.editableRoute(rn)
			r.Service, r.UpdatedAt = s.Name, now
			w.doc.Routes[rn] = r
		}
		w.pluginsFollow(kindService, old, s.Name, now)
		w.k.service.remove(w, old, now)
		if c, ok := w.doc.Canaries[old]; ok {
			delete(w.doc.Canaries, old)
			w.doc.Canaries[s.Name] = c
		}
		if ro, ok := w.doc.Rollouts[old]; ok {
			delete(w.doc.Rollouts, old)
			w.doc.Rollouts[s.Name] = ro
		}
	}
	w.doc.Services[s.Name] = s
	return nil
}

// Handlers.

// decodeClientCertificate reads a service's client_certificate.
func decodeClientCertificate(o *obj, s *state.Service) {
	if c, present, null := o.child("client_certificate"); present {
		switch {
		case null:
			s.ClientCertificate = nil
		case c != nil:
			cc := &state.ClientCertificate{}
			decodeFields(c, config.ClientCertificateSchema(), cc, nil)
			if cc.CertFile == "" || cc.KeyFile == "" {
				o.fail("client_certificate", "cert_file and key_file are both required")
			}
			c.unknown()
			s.ClientCertificate = cc
		}
	}
}
