package plugins

import (
	"fmt"
	"strings"
)

// keyAuth is key-auth: the key is read from the first of key_names found
// in a header (key_in_header) or the query (key_in_query), and names a
// credential of a consumer. As in Kong, a name read that carries several
// values (a repeated header, or a repeated query argument) is a 401
// "Duplicate API key found" (or the anonymous consumer).
type keyAuth struct {
	names          []string // canonical header names
	queryNames     []string // as configured
	hide           bool
	inHeader       bool
	inQuery        bool
	runOnPreflight bool
	wwwAuth        string
	anonymous      *Consumer
	// missing is Kong's error when anonymous names no consumer ("" when
	// it does or is unset): a failed authentication is then a 500.
	missing string
	creds   map[string]*credential
}

// Kong's upstream headers for the authenticated consumer.
const (
	hConsumerID       = "X-Consumer-ID"
	hConsumerCustomID = "X-Consumer-Custom-ID"
	hConsumerUsername = "X-Consumer-Username"
	hCredential       = "X-Credential-Identifier"
	hAnonymous        = "X-Anonymous-Consumer"
)

func newKeyAuth(c map[string]any, e *env) (*keyAuth, error) {
	ka := &keyAuth{hide: boolean(c, "hide_credentials"), inHeader: boolean(c, "key_in_header"),
		inQuery: boolean(c, "key_in_query"), runOnPreflight: boolean(c, "run_on_preflight"), creds: e.creds}
	for _, n := range strs(c, "key_names") {
		ka.names = append(ka.names, n)
		ka.queryNames = append(ka.queryNames, n)
	}
	ka.wwwAuth = "Key"
	if realm, ok := c["realm"].(string); ok {
		ka.wwwAuth = fmt.Sprintf("Key realm=%q", realm)
	}
	if a := str(c, "anonymous"); a != "" {
		ka.anonymous = e.consumers[a]
		if ka.anonymous == nil {
			for _, cs := range e.consumers {
				if strings.EqualFold(cs.ID, a) {
					ka.anonymous = cs
				}
			}
		}
		if ka.anonymous == nil {
			ka.missing = "anonymous consumer " + a + " is configured but doesn't exist"
		}
	}
	return ka, nil
}

func (ka *keyAuth) access(x *Exchange, r Request) bool {
	if !ka.runOnPreflight && r.Method() == "OPTIONS" {
		return true
	}
	if (ka.anonymous != nil || ka.missing != "") && x.credential != nil {
		return true // another authentication ran (logical OR)
	}
	key, found, dup := "", false, false
	for i, name := range ka.names {
		if ka.inHeader {
			key, found = r.Header(name)
			dup = found && r.Repeated(name, false)
		}
		if !found && ka.inQuery {
			key, found = r.QueryArg(ka.queryNames[i])
			dup = found && r.Repeated(ka.queryNames[i], true)
		}
		if dup {
			// Kong: the name read carries several values.
			key = ""
			break
		}
		if found {
			if ka.hide {
				x.Up = append(x.Up, Edit{Op: OpRemove, Name: name})
				x.Query = append(x.Query, Edit{Op: OpRemove, Name: ka.queryNames[i]})
			}
			break
		}
	}
	var cred *credential
	if key != "" {
		cred = ka.creds[key]
	}
	if cred == nil {
		if ka.missing != "" {
			x.answer(500, ka.missing)
			return false
		}
		if ka.anonymous != nil {
			ka.identify(x, ka.anonymous, nil)
			return true
		}
		if dup {
			x.answer(401, "Duplicate API key found")
			return false
		}
		msg := "No API key found in request"
		if key != "" {
			msg = "Invalid authentication credentials"
		}
		x.Down = append(x.Down, Edit{OpSet, "WWW-Authenticate", ka.wwwAuth})
		x.answer(401, msg)
		return false
	}
	ka.identify(x, cred.consumer, cred)
	return true
}

// identify records the consumer and sets Kong's consumer headers
// upstream, clearing those that do not apply (a client cannot send its
// own).
func (ka *keyAuth) identify(x *Exchange, c *Consumer, cred *credential) {
	x.Consumer, x.credential = c, cred
	set := func(name, v string) {
		if v == "" {
			x.Up = append(x.Up, Edit{Op: OpRemove, Name: name})
		} else {
			x.Up = append(x.Up, Edit{OpSet, name, v})
		}
	}
	set(hConsumerID, c.ID)
	set(hConsumerCustomID, c.CustomID)
	set(hConsumerUsername, c.Username)
	if cred != nil {
		set(hCredential, cred.id)
		set(hAnonymous, "")
	} else {
		set(hCredential, "")
		set(hAnonymous, "true")
	}
}
