package admin

import (
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// newID returns a random (version 4) UUID.
func newID() string { return config.NewID() }

// stableID returns the version 5 UUID of kind and name (config.StableID),
// so that the configuration file's entities, and discovered targets, keep
// their ids across restarts.
func stableID(kind, name string) string { return config.StableID(kind, name) }

// sameID compares ids case-insensitively.
func sameID(a, b string) bool { return a != "" && strings.EqualFold(a, b) }

// checkID checks an id given in a body.
func checkID(s string) (string, error) {
	if !config.IsUUID(s) {
		return "", errInvalidUUID
	}
	return strings.ToLower(s), nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errInvalidUUID = constError("expected a valid UUID")
