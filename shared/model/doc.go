// Package model is the neutral language spoken between Parley's XMPP side
// (component) and its SIP side (sipside). Neither side imports the other:
// each translates its protocol to and from these types, and the bus carries
// them as JSON.
//
// It must not know about XML stanzas, SIP messages or any transport.
package model
