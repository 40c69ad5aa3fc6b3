package address

import "strings"

// jidEscapable lists the characters XEP-0106 escapes, in the order of its
// table. '\' is escaped only when it starts one of the escape sequences.
const jidEscapable = ` "&'/:<>@`

// isJIDSequence reports whether the two bytes after a '\' form one of the
// ten XEP-0106 sequences. Matching is case-insensitive so that EscapeLocal
// also protects sequences such as "\2F" which become "\2f" once PRECIS folds
// the localpart's case; UnescapeLocal itself only decodes the lower-case
// form, because XEP-0106 §4 says case is significant.
func isJIDSequence(s string) bool {
	if len(s) < 2 {
		return false
	}
	return jidSequenceByte(lowerASCII(s[0]), lowerASCII(s[1])) != 0
}

// jidSequenceByte returns the character that the lower-case sequence
// `\hi lo` stands for, or 0 if it is not one of the ten sequences.
func jidSequenceByte(hi, lo byte) byte {
	switch string([]byte{hi, lo}) {
	case "20":
		return ' '
	case "22":
		return '"'
	case "26":
		return '&'
	case "27":
		return '\''
	case "2f":
		return '/'
	case "3a":
		return ':'
	case "3c":
		return '<'
	case "3e":
		return '>'
	case "40":
		return '@'
	case "5c":
		return '\\'
	}
	return 0
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// EscapeLocal applies XEP-0106 §4.2 escaping to an unescaped user part:
// each '\' that starts one of the ten escape sequences becomes "\5c"
// (business rule 7), then space " & ' / : < > @ become \20 \22 \26 \27 \2f
// \3a \3c \3e \40. Any other '\' is kept as is, so UnescapeLocal(EscapeLocal(s))
// == s for every s.
//
// It does not apply PRECIS and does not enforce the rule that "\20" may not
// start or end a localpart; the Mapper does both.
func EscapeLocal(s string) string {
	if !strings.ContainsAny(s, jidEscapable+`\`) {
		return s
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && isJIDSequence(s[i+1:]):
			b.WriteString(`\5c`)
		case c < 0x80 && strings.IndexByte(jidEscapable, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeLocal reverses XEP-0106 escaping of a localpart. It decodes only
// the ten lower-case sequences (business rule 3: anything else, such as
// "\41" or "\2F", is left untouched) in one left-to-right pass, so "\5c20"
// yields the three characters `\20`, not a space.
//
// Apply it to a localpart that PRECIS has already enforced (XEP-0106
// business rule 2); ParseJID does.
func UnescapeLocal(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+2 < len(s) {
			if c := jidSequenceByte(s[i+1], s[i+2]); c != 0 {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
