package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Source is a certificate entity as configured: inline PEM (Cert, Key and
// optionally CertAlt, KeyAlt) or files (CertFile, KeyFile), read by the
// Store.
type Source struct {
	ID                         string
	SNIs                       []string
	Default                    bool
	Cert, Key, CertAlt, KeyAlt []byte
	CertFile, KeyFile          string
	CertAltFile, KeyAltFile    string
}

func (s *Source) files() []string {
	var out []string
	for _, p := range []string{s.CertFile, s.KeyFile, s.CertAltFile, s.KeyAltFile} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (s *Source) fromFiles() bool { return s.CertFile != "" }

// EntryError is a certificate entity that does not load.
type EntryError struct {
	ID  string
	Err error
}

func (e *EntryError) Error() string { return fmt.Sprintf("certificate %s: %v", e.ID, e.Err) }

func (e *EntryError) Unwrap() error { return e.Err }

// StoreOptions configure a Store.
type StoreOptions struct {
	Log zerolog.Logger
	// Reloads counts file reloads by result ("ok", "error"); may be nil.
	Reloads *prometheus.CounterVec
}

// Store holds the Set and client CA pool in force.
//
// Concurrency: Set and ClientCAs are atomic loads, safe from any
// goroutine (handshakes). mu serialises Prepare's reads of the last good
// pairs, Commit, Poll and Reload, and guards the fields below it.
type Store struct {
	o   StoreOptions
	set atomic.Pointer[Set]
	ca  atomic.Pointer[x509.CertPool]

	mu     sync.Mutex
	srcs   []Source
	caFile string
	pairs  map[string][]*tls.Certificate // last good pairs of file sources, by id
	stamps map[string]stamp              // what each watched file held when last read
}

// stamp identifies a file's content cheaply (size, mtime) and surely
// (hash).
type stamp struct {
	size  int64
	mtime time.Time
	sum   [32]byte
}

// NewStore returns an empty store: every handshake fails until Commit.
func NewStore(o StoreOptions) *Store {
	s := &Store{o: o, pairs: map[string][]*tls.Certificate{}, stamps: map[string]stamp{}}
	empty, _ := NewSet(nil)
	s.set.Store(empty)
	return s
}

// Set returns the set in force.
func (s *Store) Set() *Set { return s.set.Load() }

// ClientCAs returns the client CA pool in force (nil: none configured).
func (s *Store) ClientCAs() *x509.CertPool { return s.ca.Load() }

// Loaded is a Set built by Prepare, ready to Commit.
type Loaded struct {
	set    *Set
	srcs   []Source
	caFile string
	ca     *x509.CertPool
	pairs  map[string][]*tls.Certificate
	stamps map[string]stamp
}

// Set is the set Commit will put in force.
func (l *Loaded) Set() *Set { return l.set }

// Prepare loads srcs and the CA bundle at caFile ("" for none) into a
// Loaded, without changing what is in force. A source that does not load
// fails Prepare, except a file source that is already in force with the
// same files: it keeps its last good pair (logged and counted), so a
// half-written file never takes a configuration reload down with it.
func (s *Store) Prepare(srcs []Source, caFile string) (*Loaded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked(srcs, caFile, nil, true)
}

// Commit puts l in force.
func (s *Store) Commit(l *Loaded) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitLocked(l)
}

func (s *Store) commitLocked(l *Loaded) {
	s.srcs, s.caFile, s.pairs, s.stamps = l.srcs, l.caFile, l.pairs, l.stamps
	s.set.Store(l.set)
	s.ca.Store(l.ca)
}

// Reload reads every file again (SIGHUP); files that do not load keep
// their last good content in force.
func (s *Store) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadLocked(nil)
}

// Poll reloads when a watched file changed since it was last read. The
// files are small, so each poll hashes their content: size and
// modification time alone miss a same-size rewrite within the file
// system's timestamp granularity.
func (s *Store) Poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	for path, st := range s.stamps {
		b, err := os.ReadFile(path)
		if err != nil {
			if st.size != missing {
				changed = append(changed, path)
			}
			continue
		}
		if int64(len(b)) != st.size || sha256.Sum256(b) != st.sum {
			changed = append(changed, path)
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		s.reloadLocked(changed)
	}
}

// Run polls every interval until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Poll()
		}
	}
}

func (s *Store) reloadLocked(changed []string) {
	if len(s.stamps) == 0 {
		return
	}
	l, err := s.loadLocked(s.srcs, s.caFile, changed, false)
	if err != nil { // cannot happen when lenient; keep what is in force
		s.o.Log.Error().Err(err).Msg("tls: reloading certificate files failed; keeping the certificates in force")
		return
	}
	s.commitLocked(l)
}

func (s *Store) count(result string) {
	if s.o.Reloads != nil {
		s.o.Reloads.WithLabelValues(result).Inc()
	}
}

// loadLocked builds a Loaded from srcs. strict (Prepare) fails on a source
// without a last good pair; otherwise failures keep the last good pair (or
// CA pool) and are logged at error level and counted. changed, when set,
// names the files a poll saw change (for the log).
func (s *Store) loadLocked(srcs []Source, caFile string, changed []string, strict bool) (*Loaded, error) {
	l := &Loaded{srcs: srcs, caFile: caFile, pairs: map[string][]*tls.Certificate{}, stamps: map[string]stamp{}}
	entries := make([]Entry, 0, len(srcs))
	reloaded := false
	for i := range srcs {
		src := &srcs[i]
		e := Entry{ID: src.ID, SNIs: slices.Clone(src.SNIs), Default: src.Default}
		if !src.fromFiles() {
			pairs, err := inlinePairs(src)
			if err != nil {
				return nil, &EntryError{ID: src.ID, Err: err}
			}
			e.Pairs = pairs
			entries = append(entries, e)
			continue
		}
		prev, hadPrev := s.pairs[src.ID]
		if hadPrev && !s.sameFilesLocked(src.ID, src) {
			hadPrev = false
		}
		pairs, stamps, err := filePairs(src)
		switch {
		case err == nil:
			if hadPrev && !samePairs(prev, pairs) {
				reloaded = true
			}
			maps(l.stamps, stamps)
		case hadPrev || !strict:
			if !hadPrev {
				return nil, &EntryError{ID: src.ID, Err: err}
			}
			s.o.Log.Error().Str("certificate", src.ID).Strs("files", src.files()).Strs("changed", changed).Str("error", err.Error()).
				Msg("tls: certificate files do not load; keeping the certificate in force")
			s.count("error")
			pairs = prev
			// Keep the failed files' stamps as they are now, so the next
			// poll waits for another change instead of failing again.
			for _, p := range src.files() {
				l.stamps[p] = stampOf(p)
			}
		default:
			return nil, &EntryError{ID: src.ID, Err: err}
		}
		l.pairs[src.ID] = pairs
		e.Pairs = pairs
		entries = append(entries, e)
	}
	set, err := NewSet(entries)
	if err != nil {
		return nil, err
	}
	l.set = set
	if caFile != "" {
		pool, st, err := loadCAs(caFile)
		switch {
		case err == nil:
			if old, ok := s.stamps[caFile]; ok && s.caFile == caFile && old.sum != st.sum {
				reloaded = true
			}
			l.ca, l.stamps[caFile] = pool, st
		case s.caFile == caFile && s.ca.Load() != nil:
			s.o.Log.Error().Str("file", caFile).Str("error", err.Error()).
				Msg("tls: the client CA bundle does not load; keeping the one in force")
			s.count("error")
			l.ca = s.ca.Load()
			l.stamps[caFile] = stampOf(caFile)
		default:
			return nil, fmt.Errorf("client CA bundle %s: %v", caFile, err)
		}
	}
	if reloaded {
		s.o.Log.Info().Strs("changed", changed).Msg("tls: certificate files reloaded")
		s.count("ok")
	}
	return l, nil
}

// sameFilesLocked reports whether the source in force with id reads the
// same files as src.
func (s *Store) sameFilesLocked(id string, src *Source) bool {
	for i := range s.srcs {
		if s.srcs[i].ID == id {
			return slices.Equal(s.srcs[i].files(), src.files())
		}
	}
	return false
}

func maps(dst, src map[string]stamp) {
	for k, v := range src {
		dst[k] = v
	}
}

func samePairs(a, b []*tls.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].Certificate) != len(b[i].Certificate) {
			return false
		}
		for j := range a[i].Certificate {
			if !bytes.Equal(a[i].Certificate[j], b[i].Certificate[j]) {
				return false
			}
		}
	}
	return true
}

func inlinePairs(src *Source) ([]*tls.Certificate, error) {
	p, err := ParsePair(src.Cert, src.Key)
	if err != nil {
		return nil, err
	}
	out := []*tls.Certificate{p}
	if len(src.CertAlt) > 0 || len(src.KeyAlt) > 0 {
		alt, err := ParsePair(src.CertAlt, src.KeyAlt)
		if err != nil {
			return nil, fmt.Errorf("cert_alt/key_alt: %v", err)
		}
		out = append(out, alt)
	}
	return out, nil
}

func filePairs(src *Source) ([]*tls.Certificate, map[string]stamp, error) {
	stamps := map[string]stamp{}
	read := func(path string) ([]byte, error) {
		b, st, err := readStamped(path)
		if err != nil {
			return nil, err
		}
		stamps[path] = st
		return b, nil
	}
	load := func(certPath, keyPath string) (*tls.Certificate, error) {
		c, err := read(certPath)
		if err != nil {
			return nil, err
		}
		k, err := read(keyPath)
		if err != nil {
			return nil, err
		}
		p, err := ParsePair(c, k)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %v", certPath, keyPath, err)
		}
		return p, nil
	}
	p, err := load(src.CertFile, src.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	out := []*tls.Certificate{p}
	if src.CertAltFile != "" {
		alt, err := load(src.CertAltFile, src.KeyAltFile)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, alt)
	}
	return out, stamps, nil
}

func loadCAs(path string) (*x509.CertPool, stamp, error) {
	b, st, err := readStamped(path)
	if err != nil {
		return nil, st, err
	}
	pool, err := ParseCAs(b)
	if err != nil {
		return nil, st, fmt.Errorf("%s: %v", path, err)
	}
	return pool, st, nil
}

// readStamped reads a file and its stamp. The stat comes first, so a
// write after it shows as a change at the next poll.
func readStamped(path string) ([]byte, stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, stamp{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, stamp{}, err
	}
	return b, stamp{size: fi.Size(), mtime: fi.ModTime(), sum: sha256.Sum256(b)}, nil
}

// missing is the size of a stamp of a file that could not be read.
const missing = -1

// stampOf is the file's stamp now, or a missing one.
func stampOf(path string) stamp {
	_, st, err := readStamped(path)
	if err != nil {
		return stamp{size: missing}
	}
	return st
}
