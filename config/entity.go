package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Meta is what every entity the admin API manages carries, as in Kong.
// It is embedded in the entity types, which are also the admin layer's
// persisted shape (package state): its json tags are that shape. ID is
// the file's id for an entity of the configuration file ("" when the file
// gives none, see Upstream.ID); the timestamps and Deleted are the admin
// layer's and zero in a file.
type Meta struct {
	ID        string `json:"id"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
	// Deleted marks a tombstone: the file's entity of this name is hidden.
	Deleted bool `json:"deleted,omitempty"`
}

// Millis is a duration that JSON writes as an integer number of
// milliseconds (Kong's unit for a service's timeouts).
type Millis time.Duration

// D is m as a time.Duration.
func (m Millis) D() time.Duration { return time.Duration(m) }

// MarshalJSON writes m in whole milliseconds.
func (m Millis) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(m).Milliseconds())
}

// UnmarshalJSON reads an integer number of milliseconds.
func (m *Millis) UnmarshalJSON(b []byte) error {
	var ms int64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("milliseconds: want an integer, got %s", b)
	}
	*m = Millis(time.Duration(ms) * time.Millisecond)
	return nil
}
