package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// TestSNIsCRUD: Kong's /snis entity: create (top level and under a
// certificate), read by name and id, list (scoped, tagged), rename, move,
// replace and delete; the certificate's snis follow.
func TestSNIsCRUD(t *testing.T) {
	e := newEnv(t, fileRich)
	ca := certtest.NewCA(t, "admin test CA")
	a, b := ca.Server(t, "a.test"), ca.Server(t, "b.test")
	certA := e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(a.CertPEM), "key": string(a.KeyPEM), "snis": []string{"a.test"}}).str("id")
	certB := e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(b.CertPEM), "key": string(b.KeyPEM)}).str("id")

	r := e.must(http.StatusCreated, http.MethodPost, "/snis", map[string]any{"name": "WWW.a.test", "certificate": map[string]any{"id": certA}, "tags": []string{"edge"}})
	id := r.str("id")
	eq(t, "name", r.body["name"], "www.a.test")
	eq(t, "certificate", r.body["certificate"], map[string]any{"id": certA})
	eq(t, "tags", r.body["tags"], []any{"edge"})
	if r.body["created_at"] == nil || r.body["updated_at"] == nil {
		t.Errorf("no timestamps: %s", r.raw)
	}
	eq(t, "certificate's snis", e.must(http.StatusOK, http.MethodGet, "/certificates/"+certA, nil).body["snis"], []any{"a.test", "www.a.test"})
	eq(t, "by id", e.must(http.StatusOK, http.MethodGet, "/snis/"+strings.ToUpper(id), nil).str("name"), "www.a.test")
	eq(t, "certificate by the new sni", e.must(http.StatusOK, http.MethodGet, "/certificates/www.a.test", nil).str("id"), certA)

	// Under a certificate; wildcards at either end.
	e.must(http.StatusCreated, http.MethodPost, "/certificates/"+certB+"/snis", map[string]any{"name": "*.b.test"})
	e.must(http.StatusCreated, http.MethodPost, "/certificates/"+certB+"/snis", map[string]any{"name": "b.*"})
	eq(t, "b's snis", len(e.must(http.StatusOK, http.MethodGet, "/certificates/"+certB+"/snis", nil).data()), 2)
	eq(t, "all", len(e.must(http.StatusOK, http.MethodGet, "/snis", nil).data()), 4)
	eq(t, "tagged", len(e.must(http.StatusOK, http.MethodGet, "/snis?tags=edge", nil).data()), 1)
	tagged := e.must(http.StatusOK, http.MethodGet, "/tags/edge", nil).data()
	eq(t, "/tags", len(tagged), 1)
	eq(t, "/tags entity", tagged[0]["entity_name"], "snis")

	// Move to another certificate, rename; the old name is gone.
	r = e.must(http.StatusOK, http.MethodPatch, "/snis/www.a.test", map[string]any{"name": "www.b.test", "certificate": map[string]any{"id": certB}})
	eq(t, "same id after rename", r.str("id"), id)
	eq(t, "tags kept", r.body["tags"], []any{"edge"})
	e.must(http.StatusNotFound, http.MethodGet, "/snis/www.a.test", nil)
	eq(t, "a's snis", e.must(http.StatusOK, http.MethodGet, "/certificates/"+certA, nil).body["snis"], []any{"a.test"})

	// PUT by a new id with a name creates it under that id.
	const putID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
	r = e.must(http.StatusCreated, http.MethodPut, "/snis/"+putID, map[string]any{"name": "d.test", "certificate": map[string]any{"id": certA}})
	eq(t, "put by id", r.str("id"), putID)
	e.must(http.StatusNoContent, http.MethodDelete, "/snis/"+putID, nil)

	// PUT by name creates, then replaces.
	e.must(http.StatusCreated, http.MethodPut, "/snis/c.test", map[string]any{"certificate": map[string]any{"id": certA}})
	r = e.must(http.StatusOK, http.MethodPut, "/snis/c.test", map[string]any{"certificate": map[string]any{"id": certB}, "tags": []string{"x"}})
	eq(t, "replaced certificate", r.body["certificate"], map[string]any{"id": certB})

	// A certificate's PATCH of snis deletes the SNIs it no longer lists.
	e.must(http.StatusOK, http.MethodPatch, "/certificates/"+certB, map[string]any{"snis": []string{"b.*", "c.test"}})
	e.must(http.StatusNotFound, http.MethodGet, "/snis/*.b.test", nil)
	eq(t, "c.test kept its id", e.must(http.StatusOK, http.MethodGet, "/snis/c.test", nil).body["tags"], []any{"x"})

	// DELETE; deleting a certificate deletes its SNIs.
	e.must(http.StatusNoContent, http.MethodDelete, "/snis/b.*", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/snis/b.*", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/certificates/"+certB, nil)
	e.must(http.StatusNotFound, http.MethodGet, "/snis/c.test", nil)
	if doc := e.fk.docJSON(); strings.Contains(doc, "c.test") {
		t.Errorf("the Doc keeps a deleted certificate's SNI: %s", doc)
	}
}

// TestSNIsBadInput: Kong's errors for SNIs, and nothing changes.
func TestSNIsBadInput(t *testing.T) {
	ca := certtest.NewCA(t, "admin test CA")
	a := ca.Server(t, "a.test")
	const nobody = "0c7a4e1f-9d2b-4b6a-8e3f-5a1d2c3b4e5f"
	cases := []struct {
		desc, method, path string
		body               func(cert string) any
		status             int
		message            string
		fields             map[string]string
	}{
		{desc: "name taken", method: http.MethodPost, path: "/snis", body: func(c string) any {
			return map[string]any{"name": "Taken.test", "certificate": map[string]any{"id": c}}
		}, status: 409, message: `UNIQUE violation detected on '{name="taken.test"}'`, fields: map[string]string{"name": "taken.test"}},
		{desc: "rename onto a taken name", method: http.MethodPatch, path: "/snis/other.test", body: func(string) any {
			return map[string]any{"name": "taken.test"}
		}, status: 409, message: `UNIQUE violation detected on '{name="taken.test"}'`},
		{desc: "no such certificate", method: http.MethodPost, path: "/snis", body: func(string) any {
			return map[string]any{"name": "n.test", "certificate": map[string]any{"id": nobody}}
		}, status: 400, message: "the foreign key '{id=\"" + nobody + "\"}' does not reference an existing 'certificates' entity.", fields: map[string]string{"certificate": "the foreign key"}},
		{desc: "no certificate", method: http.MethodPost, path: "/snis", body: func(string) any { return map[string]any{"name": "n.test"} },
			status: 400, fields: map[string]string{"certificate": "required field missing"}},
		{desc: "no name", method: http.MethodPost, path: "/snis", body: func(c string) any { return map[string]any{"certificate": map[string]any{"id": c}} },
			status: 400, fields: map[string]string{"name": "required field missing"}},
		{desc: "wildcard in the middle", method: http.MethodPost, path: "/snis", body: func(c string) any {
			return map[string]any{"name": "a.*.test", "certificate": map[string]any{"id": c}}
		}, status: 400, fields: map[string]string{"name": "invalid wildcard"}},
		{desc: "two wildcards", method: http.MethodPost, path: "/snis", body: func(c string) any {
			return map[string]any{"name": "*.a.*", "certificate": map[string]any{"id": c}}
		}, status: 400, fields: map[string]string{"name": "invalid wildcard: only one wildcard must be specified"}},
		{desc: "unknown field", method: http.MethodPost, path: "/snis", body: func(c string) any {
			return map[string]any{"name": "n.test", "certificate": map[string]any{"id": c}, "cert": "x"}
		}, status: 400, fields: map[string]string{"cert": "unknown field"}},
		{desc: "certificate not a record", method: http.MethodPost, path: "/snis", body: func(string) any {
			return map[string]any{"name": "n.test", "certificate": 7}
		}, status: 400, fields: map[string]string{"certificate": "expected a record"}},
		{desc: "under an unknown certificate", method: http.MethodPost, path: "/certificates/" + nobody + "/snis", body: func(string) any {
			return map[string]any{"name": "n.test"}
		}, status: 404},
		{desc: "PUT by a new id without a name", method: http.MethodPut, path: "/snis/" + nobody, body: func(c string) any {
			return map[string]any{"certificate": map[string]any{"id": c}}
		}, status: 400, fields: map[string]string{"name": "required field missing"}},
		{desc: "bad name in a PUT's URL", method: http.MethodPut, path: "/snis/a.*.test", body: func(c string) any {
			return map[string]any{"certificate": map[string]any{"id": c}}
		}, status: 400, fields: map[string]string{"name": "invalid wildcard"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t, fileRich)
			cert := e.must(http.StatusCreated, http.MethodPost, "/certificates", map[string]any{"cert": string(a.CertPEM), "key": string(a.KeyPEM), "snis": []string{"taken.test", "other.test"}}).str("id")
			before := e.fk.docJSON()
			r := e.do(tc.method, tc.path, tc.body(cert))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if msg, _ := r.body["message"].(string); msg == "" || tc.message != "" && msg != tc.message {
				t.Errorf("message %q, want %q", msg, tc.message)
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

// TestFileSNIs: the file's SNIs (a certificate's snis and the top-level
// snis) are listed with ids derived from their names; a PATCH retags one
// in the admin layer, a DELETE hides it.
func TestFileSNIs(t *testing.T) {
	ca := certtest.NewCA(t, "admin test CA")
	leaf := ca.Server(t, "file.test")
	certPath, keyPath := leaf.WriteFiles(t, t.TempDir(), "file")
	const certID = "6b2d9e4a-7c1f-4a3b-9d8e-1f2a3b4c5d6e"
	e := newEnv(t, fileRich+"certificates:\n  - id: "+certID+"\n    cert_file: "+certPath+"\n    key_file: "+keyPath+"\n    snis: [file.test]\n"+
		"snis:\n  - name: www.file.test\n    certificate: {id: "+certID+"}\n    tags: [file]\n")
	r := e.must(http.StatusOK, http.MethodGet, "/snis/www.file.test", nil)
	eq(t, "derived id", r.str("id"), stableID(kindSNI, "www.file.test"))
	eq(t, "tags", r.body["tags"], []any{"file"})
	eq(t, "certificate snis", e.must(http.StatusOK, http.MethodGet, "/certificates/"+certID, nil).body["snis"], []any{"file.test", "www.file.test"})
	r = e.must(http.StatusOK, http.MethodPatch, "/snis/www.file.test", map[string]any{"tags": []string{"edited"}})
	eq(t, "same id", r.str("id"), stableID(kindSNI, "www.file.test"))
	e.must(http.StatusNoContent, http.MethodDelete, "/snis/file.test", nil)
	e.must(http.StatusNotFound, http.MethodGet, "/snis/file.test", nil)
	eq(t, "certificate snis after delete", e.must(http.StatusOK, http.MethodGet, "/certificates/"+certID, nil).body["snis"], []any{"www.file.test"})
}
