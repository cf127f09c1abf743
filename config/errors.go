package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in the configuration file. Line and Col are 1-based;
// the zero Pos means "not written in the file" (a default).
type Pos struct{ Line, Col int }

// IsZero reports whether p is the zero Pos.
func (p Pos) IsZero() bool { return p.Line == 0 && p.Col == 0 }

// String renders p as "LINE:COL".
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is one problem found in a configuration file.
//
// Line and Col are 1-based; every error the decoder reports has both (a
// YAML syntax error is placed at the character where the YAML library
// fails). Errors made with File.Errorf carry the Pos given, which may be
// zero (not written in the file).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Pos returns the position of e.
func (e Error) Pos() Pos { return Pos{Line: e.Line, Col: e.Col} }

// Error renders e as "FILE:LINE:COL: reason", leaving out the parts that
// are unknown (zero).
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a configuration file, sorted by
// position. Parse and Load return a non-empty *ErrorList as their error
// when the file is invalid.
type ErrorList struct {
	Errors []Error
}

// Error renders one error per line, as "FILE:LINE:COL: reason".
func (l *ErrorList) Error() string {
	lines := make([]string, len(l.Errors))
	for i, e := range l.Errors {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors, so that errors.As can find an
// Error.
func (l *ErrorList) Unwrap() []error {
	errs := make([]error, len(l.Errors))
	for i, e := range l.Errors {
		errs[i] = e
	}
	return errs
}

// Add appends the errors of other to l. A nil other is ignored.
func (l *ErrorList) Add(other *ErrorList) {
	if other != nil {
		l.Errors = append(l.Errors, other.Errors...)
	}
}

// Err sorts l and returns it as an error, or nil when l is nil or holds no
// error. It lets callers accumulate errors with Add and return them at the
// end.
func (l *ErrorList) Err() error {
	if l == nil || len(l.Errors) == 0 {
		return nil
	}
	l.sort()
	return l
}

// sort orders the errors by line, then column; errors at the same
// position keep the order they were found in.
func (l *ErrorList) sort() {
	sort.SliceStable(l.Errors, func(i, j int) bool {
		a, b := l.Errors[i], l.Errors[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Errorf returns an *ErrorList holding one error at position p of f's
// file. Callers use it to report semantic problems that this package does
// not check, pointing at the entity's Pos.
func (f *File) Errorf(p Pos, format string, args ...any) *ErrorList {
	return &ErrorList{Errors: []Error{{
		File: f.Path,
		Line: p.Line,
		Col:  p.Col,
		Msg:  fmt.Sprintf(format, args...),
	}}}
}
