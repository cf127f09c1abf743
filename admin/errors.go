package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Kong's error codes (kong/db/errors.lua).
const (
	codeSchemaViolation     = 2
	codePrimaryKeyViolation = 3
	codeForeignKeyViolation = 4
	codeUniqueViolation     = 5
	codeNotFound            = 6
	codeInvalidOffset       = 7
	codeInvalidSize         = 9
	codeInvalidOptions      = 11
)

// invalidOption is Kong's 400 "invalid option (k: reason)" for a query
// parameter.
func invalidOption(key, format string, args ...any) *Error {
	why := fmt.Sprintf(format, args...)
	return &Error{Status: http.StatusBadRequest, Code: codeInvalidOptions, Name: "invalid options",
		Message: "invalid option (" + key + ": " + why + ")", Fields: map[string]string{key: why}}
}

// fields collects field errors: field name (dotted for nested fields) →
// reason. Only the first reason of a field is kept.
type fields map[string]string

func (f fields) add(key, format string, args ...any) {
	if _, dup := f[key]; !dup {
		f[key] = fmt.Sprintf(format, args...)
	}
}

// err returns the schema violation f describes, or nil when f is empty.
func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return schemaViolation(f)
}

// schemaViolation is Kong's 400 "schema violation (k: reason; ...)".
func schemaViolation(f fields) *Error {
	keys := sortedKeys(f)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + f[k]
	}
	msg := "schema violation (" + strings.Join(parts, "; ") + ")"
	if len(keys) > 1 {
		msg = fmt.Sprintf("%d schema violations (%s)", len(keys), strings.Join(parts, "; "))
	}
	return &Error{Status: http.StatusBadRequest, Code: codeSchemaViolation, Name: "schema violation", Message: msg, Fields: f}
}

// fieldError is a schema violation on one field.
func fieldError(key, format string, args ...any) *Error {
	f := fields{}
	f.add(key, format, args...)
	return schemaViolation(f)
}

// notFound is Kong's 404.
func notFound() *Error {
	return &Error{Status: http.StatusNotFound, Message: "Not found"}
}

// uniqueViolation is Kong's 409 for a name (or other unique key) in use:
// UNIQUE violation detected on '{name="x"}'.
func uniqueViolation(key, value string) *Error {
	return &Error{
		Status: http.StatusConflict, Code: codeUniqueViolation, Name: "unique constraint violation",
		Message: fmt.Sprintf("UNIQUE violation detected on '{%s=%q}'", key, value),
		Fields:  map[string]string{key: value},
	}
}

// primaryKeyViolation is Kong's 409 for an id in use.
func primaryKeyViolation(id string) *Error {
	return &Error{
		Status: http.StatusConflict, Code: codePrimaryKeyViolation, Name: "primary key violation",
		Message: fmt.Sprintf("primary key violation on key '{id=%q}'", id),
		Fields:  map[string]string{"id": id},
	}
}

// referenced is Kong's 400 for deleting (or renaming) an entity others
// still refer to.
func referenced(kind, by string, names []string) *Error {
	return &Error{
		Status: http.StatusBadRequest, Code: codeForeignKeyViolation, Name: "foreign key violation",
		Message: fmt.Sprintf("an existing '%s' entity references this '%s' entity (%s)", by, kind, strings.Join(names, ", ")),
		Fields:  map[string]string{"@referenced_by": by},
	}
}

// conflict is a 409 for a request the current state forbids (a rollout
// that is not running cannot be paused, ...).
func conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

// badRequest is a plain 400.
func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// absentError is what a DELETE's change returns when the entity is not
// there: nothing is written and the answer is Kong's 204 all the same.
type absentError struct{}

func (absentError) Error() string { return "absent" }

// deleted is the answer of a DELETE whose change returned err: 204 when it
// succeeded or found nothing to delete.
func deleted(err error) (int, any, error) {
	if err != nil && !errors.As(err, new(absentError)) {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
