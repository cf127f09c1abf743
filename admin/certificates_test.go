package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// TestCertificatesCRUD: create, read (by id and by SNI), list, patch,
// replace and delete certificates, and the SNI views, in Kong's shapes.
func TestCertificatesCRUD(t *testing.T) {
	e := newEnv(t, fileRich)
	ca := certtest.NewCA(t, "admin test CA")
	a := ca.Server(t, "a.test")
	b := ca.Server(t, "b.test")

	r := e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{
		"cert": string(a.CertPEM), "key": string(a.KeyPEM), "snis": []string{"A.test", "*.a.test"}, "tags": []string{"edge"},
	})
	id := r.str("id")
	eq(t, "cert", r.body["cert"], string(a.CertPEM))
	eq(t, "key (Kong returns it)", r.body["key"], string(a.KeyPEM))
	eq(t, "cert_alt", r.body["cert_alt"], nil)
	eq(t, "snis (sorted, as Kong's)", r.body["snis"], []any{"*.a.test", "a.test"})
	eq(t, "tags", r.body["tags"], []any{"edge"})

	e.must(http.StatusOK, http.MethodGet, "/certificates/"+id, nil)
	eq(t, "by SNI", e.must(http.StatusOK, http.MethodGet, "/certificates/a.test", nil).str("id"), id)
	eq(t, "list", len(e.must(http.StatusOK, http.MethodGet, "/certificates", nil).data()), 1)

	snis := e.must(http.StatusOK, http.MethodGet, "/snis", nil).data()
	if len(snis) != 2 || snis[0]["name"] != "*.a.test" || snis[1]["name"] != "a.test" {
		t.Fatalf("snis = %v", snis)
	}
	eq(t, "sni certificate", snis[1]["certificate"], map[string]any{"id": id})
	s := e.must(http.StatusOK, http.MethodGet, "/snis/a.test", nil)
	eq(t, "sni by id", e.must(http.StatusOK, http.MethodGet, "/snis/"+s.str("id"), nil).str("name"), "a.test")
	eq(t, "certificate snis", len(e.must(http.StatusOK, http.MethodGet, "/certificates/"+id+"/snis", nil).data()), 2)

	// PATCH keeps what it does not name.
	r = e.must(http.StatusOK, http.MethodPatch, "/certificates/"+id, map[string]any{"snis": []string{"a.test"}})
	eq(t, "patched snis", r.body["snis"], []any{"a.test"})
	eq(t, "patched keeps cert", r.body["cert"], string(a.CertPEM))
	e.must(http.StatusNotFound, http.MethodGet, "/snis/*.a.test", nil)

	// PUT replaces; by a new id it creates.
	newID := "3d8f7c52-1b4e-4f0a-9c6d-2e5b8a7f1c30"
	e.must(http.StatusCreated, http.MethodPut, "/certificates/"+newID, map[string]any{"cert": string(b.CertPEM), "key": string(b.KeyPEM), "snis": []string{"b.test"}})
	r = e.must(http.StatusOK, http.MethodPut, "/certificates/"+newID, map[string]any{"cert": string(b.CertPEM), "key": string(b.KeyPEM)})
	eq(t, "replaced snis", r.body["snis"], []any{})
	// PUT by a new SNI name creates a certificate serving it.
	r = e.must(http.StatusCreated, http.MethodPut, "/certificates/c.test", map[string]any{"cert": string(b.CertPEM), "key": string(b.KeyPEM)})
	eq(t, "put by sni", r.body["snis"], []any{"c.test"})

	// The Doc holds them; DELETE removes.
	if doc := e.fk.docJSON(); !strings.Contains(doc, id) || !strings.Contains(doc, newID) {
		t.Fatalf("doc lacks the certificates: %s", doc)
	}
	e.must(http.StatusNoContent, http.MethodDelete, "/certificates/"+id, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/certificates/"+id, nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/certificates/"+id, nil) // Kong: deleting what is not there is 204
	eq(t, "list after delete", len(e.must(http.StatusOK, http.MethodGet, "/certificates", nil).data()), 2)
}

// TestCertificatesBadInput: bad certificates are refused with Kong's
// schema violations naming the fields, and nothing changes.
func TestCertificatesBadInput(t *testing.T) {
	ca := certtest.NewCA(t, "admin test CA")
	a := ca.Server(t, "a.test")
	b := ca.Server(t, "b.test")
	ok := func(more map[string]any) map[string]any {
		m := map[string]any{"cert": string(a.CertPEM), "key": string(a.KeyPEM)}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		desc   string
		method string
		path   string
		body   any
		status int
		fields map[string]string // field → reason prefix
	}{
		{desc: "no cert", method: http.MethodPost, path: "/certificates", body: map[string]any{"key": string(a.KeyPEM)},
			status: 400, fields: map[string]string{"cert": "required field missing"}},
		{desc: "no key", method: http.MethodPost, path: "/certificates", body: map[string]any{"cert": string(a.CertPEM)},
			status: 400, fields: map[string]string{"key": "required field missing"}},
		{desc: "cert not PEM", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"cert": "hello"}),
			status: 400, fields: map[string]string{"cert": "invalid certificate: not PEM"}},
		{desc: "key of another certificate", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"key": string(b.KeyPEM)}),
			status: 400, fields: map[string]string{"key": "invalid certificate/key pair: private key does not match public key"}},
		{desc: "key not PEM", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"key": "secret"}),
			status: 400, fields: map[string]string{"key": "invalid key: not PEM"}},
		{desc: "alt without its key", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"cert_alt": string(b.CertPEM)}),
			status: 400, fields: map[string]string{"key_alt": "required field missing"}},
		{desc: "bad wildcard", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"snis": []string{"a.*.test"}}),
			status: 400, fields: map[string]string{"snis": "item 1: invalid wildcard"}},
		{desc: "IP as SNI", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"snis": []string{"10.0.0.1"}}),
			status: 400, fields: map[string]string{"snis": "item 1: must not be an IP address"}},
		{desc: "same SNI twice in a body", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"snis": []string{"x.test", "X.test"}}),
			status: 400, fields: map[string]string{"snis": `duplicate value "x.test"`}},
		{desc: "SNI of another certificate", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"snis": []string{"taken.test"}}),
			status: 400, fields: map[string]string{"snis": "taken.test already associated with existing certificate '"}},
		{desc: "SNI of another certificate on PATCH", method: http.MethodPatch, path: "/certificates/other.test", body: map[string]any{"snis": []string{"other.test", "taken.test"}},
			status: 400, fields: map[string]string{"snis": "taken.test already associated"}},
		{desc: "unknown field", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"cert_file": "/etc/x.pem"}),
			status: 400, fields: map[string]string{"cert_file": "unknown field"}},
		{desc: "snis not a list", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"snis": 7}),
			status: 400, fields: map[string]string{"snis": "expected an array"}},
		{desc: "bad id", method: http.MethodPost, path: "/certificates", body: ok(map[string]any{"id": "nope"}),
			status: 400, fields: map[string]string{"id": "expected a valid UUID"}},
		{desc: "bad PATCH key", method: http.MethodPatch, path: "/certificates/taken.test", body: map[string]any{"key": string(b.KeyPEM)},
			status: 400, fields: map[string]string{"key": "invalid certificate/key pair"}},
		{desc: "unknown certificate", method: http.MethodPatch, path: "/certificates/nobody.test", body: map[string]any{"tags": []string{"x"}},
			status: 404},
		{desc: "unknown SNI", method: http.MethodGet, path: "/snis/nobody.test", status: 404},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t, fileRich)
			e.must(http.StatusCreated, http.MethodPost, "/certificates", ok(map[string]any{"snis": []string{"taken.test"}}))
			e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(b.CertPEM), "key": string(b.KeyPEM), "snis": []string{"other.test"}})
			before := e.fk.docJSON()
			r := e.do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if r.body["message"] == nil {
				t.Errorf("no message: %s", r.raw)
			}
			got := r.fields()
			for k, want := range tc.fields {
				v, _ := got[k].(string)
				if !strings.HasPrefix(v, want) {
					t.Errorf("fields[%s] = %q, want prefix %q (%s)", k, v, want, r.raw)
				}
			}
			if after := e.fk.docJSON(); after != before {
				t.Errorf("the Doc changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestFileCertificates: a certificate of the configuration file is listed
// with its derived id; a PATCH copies it into the admin layer keeping its
// files; DELETE hides it with a tombstone.
func TestFileCertificates(t *testing.T) {
	ca := certtest.NewCA(t, "admin test CA")
	leaf := ca.Server(t, "file.test")
	dir := t.TempDir()
	certPath, keyPath := leaf.WriteFiles(t, dir, "file")
	e := newEnv(t, fileRich+"certificates:\n  - cert_file: "+certPath+"\n    key_file: "+keyPath+"\n    snis: [file.test]\n")
	r := e.must(http.StatusOK, http.MethodGet, "/certificates/file.test", nil)
	id := r.str("id")
	eq(t, "cert_file", r.body["cert_file"], certPath)
	eq(t, "cert (read from a file)", r.body["cert"], nil)
	eq(t, "key (read from a file)", r.body["key"], nil)
	r = e.must(http.StatusOK, http.MethodPatch, "/certificates/"+id, map[string]any{"snis": []string{"file.test", "www.file.test"}})
	eq(t, "patched keeps the files", r.body["key_file"], keyPath)
	eq(t, "patched snis", r.body["snis"], []any{"file.test", "www.file.test"})
	e.must(http.StatusNoContent, http.MethodDelete, "/certificates/"+id, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/certificates/"+id, nil)
	if doc := e.fk.docJSON(); !strings.Contains(doc, `"deleted": true`) && !strings.Contains(doc, `"deleted":true`) {
		t.Errorf("no tombstone: %s", doc)
	}
}
