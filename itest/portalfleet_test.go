package itest

// The portal's fleet page against a gateway group of three sidecars on a
// real Consul agent (the sidecars of fleetgroups_test.go): what each runs,
// and publish, staged publish, widening, rollback and promotion done by
// clicking, each checked through the admin API and the proxy.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// choose sets a select's value as a user would (the change event fires).
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	b.do("choose "+value+" in "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	js := fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', { bubbles: true })); return s.value === %q; })()`, sel, value, value)
	if !eval[bool](b, js) {
		b.t.Fatalf("%s has no option %q", sel, value)
	}
}

// textHas is a JavaScript test that the element sel's text contains s.
func textHas(sel, s string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent || '').includes(%q)`, sel, s)
}

// pfRunsCell is a JavaScript test that the fleet page shows sidecar id
// running version v.
func pfRunsCell(id string, v uint64) string {
	return fmt.Sprintf(`document.querySelector('#sidecars tr[data-node=%q] td[data-col=version]')?.textContent === '%d'`, id, v)
}

func TestPortalFleetGroups(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("no Chromium installed (Debian package chromium): the portal's browser tests need one")
	}
	ag := consultest.Start(t)
	prefix := fmt.Sprintf("outrigger-test-%016x", rand.Uint64())
	p := startBackend(t, "primary", nil)
	bad := startBackend(t, "bad", nil)
	bk := fgBackends{primary: p.Addr, bad: bad.Addr}
	c := newClient()
	a1 := fgStart(t, ag, bk, prefix, "A", "a1", false, true)
	a2 := fgStart(t, ag, bk, prefix, "A", "a2", false, true)
	// a3's file has no service s2: a draft routing to it does not build
	// there.
	a3 := fgStart(t, ag, bk, prefix, "A", "a3", false, false)
	all := []*fgSidecar{a1, a2, a3}
	runs := func(v1, v2, v3 uint64) map[string]uint64 { return map[string]uint64{"a1": v1, "a2": v2, "a3": v3} }
	fgWaitRuns(t, a1.api, "", runs(0, 0, 0))
	serves := func(path string, want ...bool) {
		t.Helper()
		for i, s := range all {
			if got := fgServes(t, c, s, path); got != want[i] {
				t.Fatalf("%s routes %s: %t, want %t", s.id, path, got, want[i])
			}
		}
	}

	b := newBrowser(t, a1.g, 150*time.Second)
	b.open("/fleet", `#sidecars tr[data-node="a3"]`)
	for _, s := range all {
		b.until(s.id+" at version 0", pfRunsCell(s.id, 0), 10*time.Second)
	}

	// A whole-group publish: the draft's change is listed first.
	fgRoute(t, a1.api, "r1", "s")
	b.until("the draft lists route r1", textHas("#draft-diff", "route r1"), 10*time.Second)
	b.fill(`#publish-form [name="message"]`, "add r1")
	b.click(`#publish-form button[type=submit]`)
	b.until("version 1 published", textHas("#publish-form .ok-note", "published version 1"), 10*time.Second)
	fgWaitRuns(t, a1.api, "", runs(1, 1, 1))
	serves("/r1", true, true, true)
	b.until("the draft equals version 1", textHas("#draft-note", "equals version 1"), 10*time.Second)

	// Rows are updated in place, not rebuilt (the layout holds still).
	eval[bool](b, `(document.querySelector('#sidecars tr[data-node="a1"]').dataset.kept = 'yes') === 'yes'`)

	// A staged publish to a1 alone.
	fgRoute(t, a2.api, "r2", "s")
	b.until("the draft lists route r2", textHas("#draft-diff", "route r2"), 10*time.Second)
	b.fill(`#publish-form [name="message"]`, "add r2")
	// A stage the API refuses: its field's error shows beside that field,
	// and nothing is published.
	b.choose(`#publish-form [name="stage"]`, "percent")
	b.fill(`#publish-form [name="stage.percent"]`, "50")
	b.fill(`#publish-form [name="stage.steps"]`, "40")
	b.click(`#publish-form button[type=submit]`)
	b.until("the steps' error beside them", textHas(`#publish-form [data-error-for="stage.steps"]`, "must start above percent"), 10*time.Second)
	if st := fgFleet(t, a1.api, ""); st.Latest != 1 {
		t.Fatalf("a refused staged publish took a number: latest %d", st.Latest)
	}
	b.fill(`#publish-form [name="stage.steps"]`, "")
	b.choose(`#publish-form [name="stage"]`, "sidecars")
	b.click(`#publish-form input[type=checkbox][value="a1"]`)
	// Each step, widened by hand too, holds this long before it completes.
	b.fill(`#publish-form [name="stage.interval"]`, "1s")
	b.click(`#publish-form button[type=submit]`)
	b.until("version 2 published", textHas("#publish-form .ok-note", "published version 2"), 10*time.Second)
	fgWaitRuns(t, a3.api, "", runs(2, 1, 1))
	b.until("the draft shown as version 2's content", textHas("#draft-note", "the content of version 2"), 10*time.Second)
	serves("/r2", true, false, false)
	if st := fgFleet(t, a1.api, ""); st.Version != 1 || st.Stage == nil || st.Stage.State != state.StageRunning || st.Stage.Percent != 0 {
		t.Fatalf("head after the staged publish: %+v %+v", st, st.Stage)
	}
	for id, v := range runs(2, 1, 1) {
		b.until(id+" shown at its version", pfRunsCell(id, v), 10*time.Second)
	}
	if kept := eval[string](b, `document.querySelector('#sidecars tr[data-node="a1"]').dataset.kept || 'rebuilt'`); kept != "yes" {
		t.Fatalf("a1's row was %s on refresh", kept)
	}
	b.until("the stage shown running", `document.querySelector('[data-head=stage]').dataset.stageState === 'running'`, 5*time.Second)
	eval[bool](b, `(window.scrollTo(0, 0), true)`)
	b.screenshot("portal-fleet")

	// A rollback while the stage runs is refused beside its control, and
	// takes no number.
	b.choose(`#rollback-form [name="version"]`, "1")
	b.click(`#rollback-form button[type=submit]`)
	b.until("the refusal beside Roll back", textHas("#rollback-form .form-error", "staged publish"), 10*time.Second)
	if st := fgFleet(t, a1.api, ""); st.Latest != 2 {
		t.Fatalf("a refused rollback took a number: latest %d", st.Latest)
	}

	// Widened to the whole group: the stage completes.
	b.fill(`#stage-form [name="percent"]`, "100")
	b.click(`#stage-form button[type=submit]`)
	fgWaitRuns(t, a1.api, "", runs(2, 2, 2))
	// The last step completes once the staged sidecars served the
	// stage's min_requests (20 by default) during it.
	for _, s := range all {
		for range 10 {
			fgServes(t, c, s, "/r2")
		}
	}
	b.until("a1's requests counted", `Number(document.querySelector('#sidecars tr[data-node="a1"] td[data-col=requests]').textContent) >= 10`, 10*time.Second)
	waitFor(t, 10*time.Second, "the stage to complete", func() bool {
		st := fgFleet(t, a1.api, "")
		return st.Version == 2 && st.Stage != nil && st.Stage.State == state.StageCompleted
	})
	serves("/r2", true, true, true)
	b.until("the stage shown completed", `document.querySelector('[data-head=stage]').dataset.stageState === 'completed'`, 10*time.Second)

	// Rolled back to version 1: version 3, with version 1's hash.
	b.choose(`#rollback-form [name="version"]`, "1")
	b.fill(`#rollback-form [name="message"]`, "r2 was wrong")
	b.click(`#rollback-form button[type=submit]`)
	b.until("version 3 published", textHas("#rollback-form .ok-note", "published version 3"), 10*time.Second)
	v1 := a1.api.get(t, http.StatusOK, "/fleet/versions/1")
	v3 := a1.api.get(t, http.StatusOK, "/fleet/versions/3")
	if v3.str("hash") != v1.str("hash") || v3.str("source") != "rollback" || v3.str("message") != "r2 was wrong" {
		t.Fatalf("rollback: %s (version 1: %s)", v3.raw, v1.raw)
	}
	fgWaitRuns(t, a1.api, "", runs(3, 3, 3))
	b.until("this sidecar's admin layer at version 3", `document.querySelector('#admin-layer dd:nth-of-type(2)').textContent === '3'`, 10*time.Second)
	serves("/r2", false, false, false)
	b.until("version 3 listed with version 1's hash", fmt.Sprintf(`document.querySelector('#versions tr[data-version="3"] td:nth-child(2)')?.textContent === %q`, v1.str("hash")), 10*time.Second)

	// Promoted to group B, unchanged.
	b.choose(`#promote-form [name="version"]`, "3")
	b.fill(`#promote-form [name="to_group"]`, "B")
	b.click(`#promote-form button[type=submit]`)
	b.until("promoted", textHas("#promote-form .ok-note", "version 1 of B"), 10*time.Second)
	if bv := a1.api.get(t, http.StatusOK, "/fleet/versions/3"); bv.str("hash") != v1.str("hash") {
		t.Fatalf("A's version 3 changed: %s", bv.raw)
	}
	if st := fgFleet(t, a1.api, "B"); st.Version != 1 || st.Latest != 1 {
		t.Fatalf("group B after the promotion: %+v", st)
	}
	if st := fgFleet(t, a1.api, ""); st.Version != 3 || st.Latest != 3 {
		t.Fatalf("group A after the promotion: %+v", st)
	}

	// A draft that does not build on a3 is refused by a3's page, beside
	// the publish control; nothing is published.
	fgRoute(t, a1.api, "r8", "s2")
	b.base = "http://" + a3.g.AdminAddr
	b.open("/fleet", `#publish-form`)
	b.until("the draft lists route r8", textHas("#draft-diff", "route r8"), 10*time.Second)
	b.fill(`#publish-form [name="message"]`, "r8 to s2")
	b.click(`#publish-form button[type=submit]`)
	b.until("the refusal beside Publish", textHas("#publish-form .form-error", "s2"), 10*time.Second)
	if st := fgFleet(t, a1.api, ""); st.Latest != 3 {
		t.Fatalf("a refused publish took a number: latest %d", st.Latest)
	}
	serves("/r8", false, false, false)

	// Published from a1, whose file has s2: a3 cannot apply it, keeps
	// version 3 and its page says why.
	a1.api.json(t, http.StatusCreated, http.MethodPost, "/fleet/publish", map[string]any{"message": "r8 to s2"})
	b.until("a3's failure shown", textHas(`#sidecars tr[data-node="a3"] td[data-col=applied]`, "failed")+" && "+
		textHas(`#sidecars tr[data-node="a3"] td[data-col=applied]`, "s2")+" && "+
		textHas(`#sidecars tr[data-node="a3"] td[data-col=drift]`, "version 4 did not apply")+" && "+pfRunsCell("a3", 3), 15*time.Second)
	b.until("a1 shown at version 4", pfRunsCell("a1", 4), 10*time.Second)
	b.until("one sidecar drifted", textHas(`[data-head=drifted]`, "1 of 3"), 10*time.Second)
	serves("/r8", true, true, false)
}
