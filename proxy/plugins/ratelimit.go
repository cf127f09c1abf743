package plugins

import (
	"hash/maphash"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// rateLimit is rate-limiting with the local policy: per identifier, one
// fixed window per configured period (aligned on the period's start, in
// UTC, as Kong's timestamps), counted in a lock-free table.
type rateLimit struct {
	periods []period // configured, shortest first
	limitBy string
	header  string // limit_by header
	path    string // limit_by path
	hide    bool
	// faultTolerant: a request that cannot be counted (the table is full
	// of live identifiers) goes through; else it is Kong's 500.
	faultTolerant bool
	code          int
	message       string
	table         *counterTable
	// now is the clock (time.Now; tests inject theirs).
	now func() time.Time
}

// period is one configured limit.
type period struct {
	idx   int // in config.RateLimitPeriods
	limit float64
	// limitH and remainH are the X-RateLimit-* header names; limitS is
	// the limit as the headers show it.
	limitH, remainH, limitS string
}

// Kong's period lengths (kong/plugins/rate-limiting/expiration.lua), for
// RateLimit-Reset.
var expiration = [6]int64{1, 60, 3600, 86400, 2592000, 31536000}

var periodTitles = [6]string{"Second", "Minute", "Hour", "Day", "Month", "Year"}

func newRateLimit(c map[string]any, prev *rateLimit) (*rateLimit, error) {
	rl := &rateLimit{limitBy: str(c, "limit_by"), header: str(c, "header_name"), path: str(c, "path"),
		hide: boolean(c, "hide_client_headers"), faultTolerant: boolean(c, "fault_tolerant"), message: str(c, "error_message"), now: time.Now}
	code, _ := number(c, "error_code")
	rl.code = int(code)
	for i, name := range config.RateLimitPeriods() {
		if v, ok := number(c, name); ok {
			rl.periods = append(rl.periods, period{idx: i, limit: v, limitS: string(appendNumber(nil, v)),
				limitH: "X-RateLimit-Limit-" + periodTitles[i], remainH: "X-RateLimit-Remaining-" + periodTitles[i]})
		}
	}
	if prev != nil && samePeriods(prev.periods, rl.periods) {
		rl.table = prev.table
	} else {
		size := manySlots
		if rl.limitBy == "service" || rl.limitBy == "path" {
			size = fewSlots
		}
		rl.table = newCounterTable(len(rl.periods), size)
	}
	return rl, nil
}

func samePeriods(a, b []period) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].idx != b[i].idx {
			return false
		}
	}
	return true
}

// identifier is who the request is counted for (Kong's get_identifier):
// the configured entity, else the client's IP.
func (rl *rateLimit) identifier(x *Exchange, r Request) string {
	switch rl.limitBy {
	case "consumer":
		if x.Consumer != nil {
			return x.Consumer.ID
		}
		if x.credential != nil {
			return x.credential.id
		}
	case "credential":
		if x.credential != nil {
			return x.credential.id
		}
	case "service":
		if x.service != "" {
			return x.service
		}
	case "header":
		if v, ok := r.Header(rl.header); ok {
			return v
		}
	case "path":
		if p := r.Path(); p == rl.path {
			return p
		}
	}
	return r.ClientIP()
}

// windowOf is the window number and start (unix seconds) of period idx
// at now.
func windowOf(idx int, now time.Time) (uint32, int64) {
	sec := now.Unix()
	switch idx {
	case 4: // month
		y, m, _ := now.UTC().Date()
		return uint32(y*12 + int(m) - 1), time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Unix()
	case 5: // year
		y := now.UTC().Year()
		return uint32(y), time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	}
	n := expiration[idx]
	w := sec / n
	return uint32(w), w * n
}

func (rl *rateLimit) access(x *Exchange, r Request) bool {
	now := rl.now()
	var wins [6]uint32
	for i, p := range rl.periods {
		wins[i], _ = windowOf(p.idx, now)
	}
	n := len(rl.periods)
	id := rl.identifier(x, r)
	sl := rl.table.slot(id, func(s []atomic.Uint64) bool {
		for i := 0; i < n; i++ {
			if uint32(s[i].Load()>>32) == wins[i] {
				return false
			}
		}
		return true
	})
	if sl == nil {
		if rl.faultTolerant {
			return true
		}
		x.answer(500, "An unexpected error occurred")
		return false
	}
	// Count the request in every window unless one is at its limit
	// (then none counts it, as Kong).
	var counts [6]uint64
	stop := -1
	for i, p := range rl.periods {
		w, c := wins[i], &sl[i]
		for {
			old := c.Load()
			used := old & 0xffffffff
			if uint32(old>>32) != w {
				used = 0
			}
			if float64(used) >= p.limit {
				stop, counts[i] = i, used
				break
			}
			if c.CompareAndSwap(old, uint64(w)<<32|(used+1)) {
				counts[i] = used + 1
				break
			}
		}
		if stop >= 0 {
			break
		}
	}
	if stop >= 0 {
		for i := 0; i < stop; i++ {
			uncount(&sl[i], wins[i])
			counts[i]--
		}
		// The other periods show their usage without this request.
		for i := stop + 1; i < n; i++ {
			if old := sl[i].Load(); uint32(old>>32) == wins[i] {
				counts[i] = old & 0xffffffff
			}
		}
	}
	if !rl.hide {
		rl.headers(x, now, counts[:n], stop)
	}
	if stop >= 0 {
		x.answer(rl.code, rl.message)
		return false
	}
	return true
}

// uncount takes back one count of window w.
func uncount(c *atomic.Uint64, w uint32) {
	for {
		old := c.Load()
		if uint32(old>>32) != w || old&0xffffffff == 0 {
			return
		}
		if c.CompareAndSwap(old, old-1) {
			return
		}
	}
}

// appendNumber appends a limit or a count as Kong prints it (5, or 2.5).
func appendNumber(b []byte, f float64) []byte {
	if f == float64(int64(f)) {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// headers sets Kong's headers: X-RateLimit-Limit-<Period> and
// X-RateLimit-Remaining-<Period> for each period, RateLimit-Limit,
// -Remaining and -Reset of the period with the least remaining (the
// longest on a tie), and Retry-After when stopped.
func (rl *rateLimit) headers(x *Exchange, now time.Time, counts []uint64, stop int) {
	best := -1
	var bestRemain float64
	for i, p := range rl.periods {
		// counts include this request unless a period stopped it.
		remain := max(0, p.limit-float64(counts[i]))
		if best < 0 || remain < bestRemain || remain == bestRemain && expiration[p.idx] > expiration[rl.periods[best].idx] {
			best, bestRemain = i, remain
		}
		x.Down = append(x.Down,
			Edit{OpSet, p.limitH, p.limitS},
			Edit{OpSet, p.remainH, x.text(func(b []byte) []byte { return appendNumber(b, remain) })})
	}
	bp := rl.periods[best]
	_, start := windowOf(bp.idx, now)
	reset := max(1, expiration[bp.idx]-(now.Unix()-start))
	resetS := x.text(func(b []byte) []byte { return strconv.AppendInt(b, reset, 10) })
	x.Down = append(x.Down,
		Edit{OpSet, "RateLimit-Limit", bp.limitS},
		Edit{OpSet, "RateLimit-Remaining", x.text(func(b []byte) []byte { return appendNumber(b, bestRemain) })},
		Edit{OpSet, "RateLimit-Reset", resetS})
	if stop >= 0 {
		x.Down = append(x.Down, Edit{OpSet, "Retry-After", resetS})
	}
}

// counterTable is a fixed-size, open-addressed, lock-free table of
// counters keyed by a 64-bit hash of the identifier (two identifiers
// sharing a hash would share counters: 2^-64 odds). A slot whose windows
// have all passed is reused by the next identifier probing it.
type counterTable struct {
	seed    maphash.Seed
	periods int
	// keys[i] is slot i's hash|1 (0: free); wins[i*periods+p] its
	// window number (high 32 bits) and count in it (low 32 bits) for
	// period p.
	keys []atomic.Uint64
	wins []atomic.Uint64
	mask uint64
}

// Table sizes: identifiers that are many (IPs, consumers, header values)
// or few (a service, a path).
const (
	manySlots = 1 << 12
	fewSlots  = 1 << 6
	maxProbes = 16
)

func newCounterTable(periods, size int) *counterTable {
	return &counterTable{seed: maphash.MakeSeed(), periods: periods, keys: make([]atomic.Uint64, size),
		wins: make([]atomic.Uint64, size*periods), mask: uint64(size - 1)}
}

// slot finds (or claims) id's slot and returns its windows; stale reports
// whether a slot's windows have all passed, so that it may be reused.
// nil when every probed slot belongs to a live identifier.
func (t *counterTable) slot(id string, stale func(wins []atomic.Uint64) bool) []atomic.Uint64 {
	h := maphash.String(t.seed, id) | 1
	for i := uint64(0); i < maxProbes; i++ {
		at := (h + i) & t.mask
		key, wins := &t.keys[at], t.wins[int(at)*t.periods:int(at+1)*t.periods]
		k := key.Load()
		switch {
		case k == h:
			return wins
		case k == 0:
			if key.CompareAndSwap(0, h) || key.Load() == h {
				return wins
			}
		case stale(wins):
			if key.CompareAndSwap(k, h) {
				return wins
			}
		}
	}
	return nil
}
