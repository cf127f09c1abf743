package admin

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// stableID returns the version 5 UUID of kind and name (config.StableID),
// so that the configuration file's entities, and discovered targets, keep
// their ids across restarts.
func stableID(kind, name string) string { return config.StableID(kind, name) }

func formatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

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
