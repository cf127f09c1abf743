package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// FileStore keeps the Doc in one JSON file, {"version": N, "doc": {...}},
// for a single gateway process.
//
// Contract:
//   - Save is durable before it returns: the new content goes to a temp
//     file in the same directory (".<name>.tmp-*"), which is written,
//     fsynced, renamed over the file, and then the directory is fsynced.
//     A crash at any moment leaves the old complete file or the new one,
//     never a torn one (a stray temp file at most).
//   - Save compares prev with the version in the file, re-read on every
//     Save (under the store's mutex), so a change made by someone else to
//     the file is detected too. The versions count 1, 2, 3, … One process
//     writes the file: two processes (or two FileStores in one process)
//     writing the same path can still race between read and rename.
//   - Load of a missing file returns an empty Doc and version 0, as long as
//     its directory exists (a missing directory is an error, so a mistyped
//     path fails at start, not at the first Save). A file that does not
//     parse is an error naming the path, from Load and from Save: the store
//     never silently starts empty over it, nor overwrites it.
//   - The first Save of a FileStore removes the temp files a crashed
//     process left behind (".<name>.tmp-*" in the same directory).
//   - A new file gets mode 0600; a replaced file keeps its mode.
//   - If the rename succeeded but the directory fsync failed, Save returns
//     an error although the new file is in place: the next Save on the old
//     version gets ErrConflict and the caller reloads.
//   - Watch returns at once: there are no other writers.
type FileStore struct {
	path string

	mu    sync.Mutex // serializes Saves
	swept bool       // stale temp files removed (guarded by mu)
}

var _ Store = (*FileStore)(nil)

// fileEnvelope is the state file's content.
type fileEnvelope struct {
	Version uint64 `json:"version"`
	Doc     *Doc   `json:"doc"`
}

// NewFileStore returns a store for the state file at path. Nothing is read
// or created until Load or Save.
func NewFileStore(path string) *FileStore {
	return &FileStore{path: path}
}

// Path returns the state file's path.
func (s *FileStore) Path() string { return s.path }

// Load reads the state file.
func (s *FileStore) Load(ctx context.Context) (*Doc, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	b, err := s.readFile()
	if err != nil || b == nil {
		return &Doc{}, 0, err
	}
	env, err := s.parse(b, true)
	if err != nil {
		return nil, 0, err
	}
	return env.Doc, env.Version, nil
}

// Save writes doc as the version after prev, or returns ErrConflict when
// the file's version is not prev.
func (s *FileStore) Save(ctx context.Context, doc *Doc, prev uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if doc == nil {
		doc = &Doc{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	var cur uint64
	b, err := s.readFile()
	if err != nil {
		return 0, err
	}
	if b != nil {
		env, err := s.parse(b, false)
		if err != nil {
			return 0, err
		}
		cur = env.Version
	}
	if cur != prev {
		return 0, ErrConflict
	}
	next := cur + 1
	out, err := json.MarshalIndent(fileEnvelope{Version: next, Doc: doc}, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("state: encoding state for %s: %w", s.path, err)
	}
	out = append(out, '\n')
	if !s.swept {
		s.removeStaleTemps()
		s.swept = true
	}
	if err := s.writeAtomic(out); err != nil {
		return 0, err
	}
	return next, nil
}

// Watch returns at once: a state file has no other writers.
func (s *FileStore) Watch(ctx context.Context, fn func(*Doc, uint64)) {}

// readFile returns the file's bytes, or nil without error when the file
// does not exist but its directory does.
func (s *FileStore) readFile() ([]byte, error) {
	b, err := os.ReadFile(s.path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state: reading state file %s: %w", s.path, err)
	}
	dir := filepath.Dir(s.path)
	st, derr := os.Stat(dir)
	switch {
	case derr != nil:
		return nil, fmt.Errorf("state: state file %s: its directory is not usable: %w", s.path, derr)
	case !st.IsDir():
		return nil, fmt.Errorf("state: state file %s: %s is not a directory", s.path, dir)
	}
	return nil, nil
}

// parse decodes the file's content. With withDoc false only the envelope
// is checked (the doc must still be a JSON object).
func (s *FileStore) parse(b []byte, withDoc bool) (*fileEnvelope, error) {
	var raw struct {
		Version *uint64         `json:"version"`
		Doc     json.RawMessage `json:"doc"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, s.corrupt(err.Error())
	}
	if raw.Version == nil {
		return nil, s.corrupt(`no "version"`)
	}
	if len(raw.Doc) == 0 || raw.Doc[0] != '{' {
		return nil, s.corrupt(`"doc" is not an object`)
	}
	env := &fileEnvelope{Version: *raw.Version}
	if withDoc {
		env.Doc = &Doc{}
		if err := json.Unmarshal(raw.Doc, env.Doc); err != nil {
			return nil, s.corrupt(err.Error())
		}
	}
	return env, nil
}

func (s *FileStore) corrupt(why string) error {
	return fmt.Errorf("state: state file %s is corrupt (%s); fix or remove it, it is not replaced by an empty state", s.path, why)
}

// tempPrefix is the name prefix of this store's temp files.
func (s *FileStore) tempPrefix() string {
	return "." + filepath.Base(s.path) + ".tmp-"
}

// removeStaleTemps removes temp files left by a crashed writer. Errors are
// ignored: a leftover temp file is harmless.
func (s *FileStore) removeStaleTemps() {
	dir := filepath.Dir(s.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := s.tempPrefix()
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// writeAtomic replaces the file with b durably: temp file, write, fsync,
// rename, fsync of the directory.
func (s *FileStore) writeAtomic(b []byte) (err error) {
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, s.tempPrefix()+"*")
	if err != nil {
		return fmt.Errorf("state: saving %s: %w", s.path, err)
	}
	tmpName := tmp.Name()
	closed, renamed := false, false
	defer func() {
		if err != nil && !renamed {
			if !closed {
				_ = tmp.Close()
			}
			_ = os.Remove(tmpName)
		}
	}()
	if st, serr := os.Stat(s.path); serr == nil {
		if err = tmp.Chmod(st.Mode().Perm()); err != nil {
			return fmt.Errorf("state: saving %s: %w", s.path, err)
		}
	}
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("state: saving %s: writing %s: %w", s.path, tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("state: saving %s: fsync of %s: %w", s.path, tmpName, err)
	}
	closed = true
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("state: saving %s: closing %s: %w", s.path, tmpName, err)
	}
	if err = os.Rename(tmpName, s.path); err != nil {
		return fmt.Errorf("state: saving %s: %w", s.path, err)
	}
	renamed = true
	if derr := syncDir(dir); derr != nil {
		return fmt.Errorf("state: saving %s: the new state is in place but the fsync of directory %s failed, so it may not survive a crash: %w", s.path, dir, derr)
	}
	return nil
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}
