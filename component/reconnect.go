package component

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	xstream "mellium.im/xmpp/stream"
)

// ConfigError is a refusal by the XMPP server that no reconnect can cure:
// the configuration of Parley or of the server must change. Run returns it.
type ConfigError struct {
	Domain string
	// Condition is the stream error condition the server sent
	// ("not-authorized", "host-unknown", "conflict", "invalid-namespace").
	Condition string
	// Fix says what to change, in words for the operator.
	Fix string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("component %s: %s", e.Domain, e.Fix)
}

// maxConflicts is how many handshakes in a row may be refused with
// <conflict/> after the stream has been up, before the refusal counts as a
// configuration error: right after a reconnect the server may not yet have
// noticed that our previous connection is gone.
const maxConflicts = 5

// classify turns a stream error from the server into a ConfigError when it
// is one of the conditions that mean "fix the configuration", or returns nil
// when reconnecting may help. wasUp says whether this stream has been up
// during this Run; conflicts counts consecutive <conflict/> refusals.
func classify(domain, server string, err error, wasUp bool, conflicts int) *ConfigError {
	var se xstream.Error
	if !errors.As(err, &se) {
		return nil
	}
	ce := &ConfigError{Domain: domain, Condition: se.Err}
	switch se.Err {
	case "not-authorized":
		ce.Fix = "the XMPP server refused the secret (not-authorized): check component.secret_file " +
			"matches component_secret in Prosody (the listener password in ejabberd)"
	case "host-unknown":
		ce.Fix = fmt.Sprintf("the XMPP server does not know this domain (host-unknown): add "+
			"Component %q to Prosody's config (a host of the component listener in ejabberd), "+
			"or remove it from component.domains / component.gateway_domain", domain)
	case "conflict":
		if wasUp && conflicts < maxConflicts {
			return nil
		}
		ce.Fix = "another component is connected for this domain (conflict): stop the other " +
			"Parley instance or give each instance its own domains"
	case "invalid-namespace":
		ce.Fix = fmt.Sprintf("the server at %s does not speak XEP-0114 (invalid-namespace): point "+
			"component.server at the component port (Prosody component_ports, default 5347), not c2s", server)
	default:
		return nil
	}
	return ce
}

// isConflict reports whether err is a <conflict/> stream error.
func isConflict(err error) bool {
	var se xstream.Error
	return errors.As(err, &se) && se.Err == "conflict"
}

// backoff yields exponentially growing delays with jitter between min and
// max. The zero value is not usable; use newBackoff.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, next: min}
}

// delay returns the next wait: a random duration in [d/2, d] where d
// doubles on every call up to max ("equal jitter", so instances restarted
// together do not reconnect in lockstep).
func (b *backoff) delay() time.Duration {
	d := b.next
	b.next *= 2
	if b.next > b.max {
		b.next = b.max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset starts again from min (after a stream that stayed up a while).
func (b *backoff) reset() { b.next = b.min }
