package tessera

// A strict JSON reader for token headers and payloads.
//
// encoding/json is too lenient for deciding on tokens exactly as the
// server does (it merges duplicate keys, replaces invalid UTF-8 and lone
// surrogates, accepts floats for integers). The server parses with
// serde_json into strict types; this reader accepts exactly the texts
// serde_json accepts and keeps objects as ordered member lists, so the
// typed extraction in token.go can refuse a duplicate of a named field
// (serde's duplicate_field) and let later unknown members win (serde_json's
// Map), as the server does.

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

type jsonValue struct {
	kind jsonKind
	b    bool
	s    string // a string's value, or a number's literal text
	arr  []jsonValue
	obj  []jsonMember
}

type jsonMember struct {
	key   string
	value jsonValue
}

var errJSON = errors.New("invalid JSON")

// serde_json's recursion limit: the 128th nested container is refused.
const jsonMaxDepth = 128

type jsonParser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSON parses one JSON text (surrounding whitespace allowed).
func parseJSON(data []byte) (jsonValue, error) {
	p := jsonParser{data: data, depth: jsonMaxDepth}
	v, err := p.value()
	if err != nil {
		return jsonValue{}, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return jsonValue{}, errJSON
	}
	return v, nil
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) literal(word string) bool {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *jsonParser) value() (jsonValue, error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return jsonValue{}, errJSON
	}
	switch c := p.data[p.pos]; {
	case c == 'n':
		if p.literal("null") {
			return jsonValue{kind: jsonNull}, nil
		}
	case c == 't':
		if p.literal("true") {
			return jsonValue{kind: jsonBool, b: true}, nil
		}
	case c == 'f':
		if p.literal("false") {
			return jsonValue{kind: jsonBool}, nil
		}
	case c == '"':
		s, err := p.str()
		return jsonValue{kind: jsonString, s: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == '[':
		return p.array()
	case c == '{':
		return p.object()
	}
	return jsonValue{}, errJSON
}

func (p *jsonParser) enter() error {
	p.depth--
	if p.depth == 0 {
		return errJSON
	}
	return nil
}

func (p *jsonParser) array() (jsonValue, error) {
	if err := p.enter(); err != nil {
		return jsonValue{}, err
	}
	p.pos++ // '['
	v := jsonValue{kind: jsonArray, arr: []jsonValue{}}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth++
		return v, nil
	}
	for {
		item, err := p.value()
		if err != nil {
			return jsonValue{}, err
		}
		v.arr = append(v.arr, item)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return jsonValue{}, errJSON
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth++
			return v, nil
		default:
			return jsonValue{}, errJSON
		}
	}
}

func (p *jsonParser) object() (jsonValue, error) {
	if err := p.enter(); err != nil {
		return jsonValue{}, err
	}
	p.pos++ // '{'
	v := jsonValue{kind: jsonObject, obj: []jsonMember{}}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return jsonValue{}, errJSON
		}
		key, err := p.str()
		if err != nil {
			return jsonValue{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return jsonValue{}, errJSON
		}
		p.pos++
		item, err := p.value()
		if err != nil {
			return jsonValue{}, err
		}
		v.obj = append(v.obj, jsonMember{key: key, value: item})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return jsonValue{}, errJSON
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth++
			return v, nil
		default:
			return jsonValue{}, errJSON
		}
	}
}

func hexVal(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}

func (p *jsonParser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, errJSON
	}
	var r rune
	for i := 0; i < 4; i++ {
		h, ok := hexVal(p.data[p.pos+i])
		if !ok {
			return 0, errJSON
		}
		r = r<<4 | h
	}
	p.pos += 4
	return r, nil
}

// str reads a string: valid UTF-8, no raw control characters, only the
// JSON escapes, and surrogate escapes only in pairs (serde_json refuses a
// lone one).
func (p *jsonParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			raw := p.data[start:p.pos]
			if !utf8.Valid(raw) {
				return "", errJSON
			}
			p.pos++
			return string(raw), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", errJSON
		}
		p.pos++
	}
	buf := append([]byte(nil), p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", errJSON
			}
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", errJSON
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.data) {
			return "", errJSON
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return "", errJSON // lone trailing surrogate
			case r >= 0xD800 && r <= 0xDBFF:
				if len(p.data)-p.pos < 6 || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
					return "", errJSON
				}
				p.pos += 2
				r2, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return "", errJSON
				}
				r = utf16.DecodeRune(r, r2)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errJSON
		}
	}
	return "", errJSON
}

// number checks the JSON number grammar (as serde_json: one leading zero,
// digits after '.' and in the exponent) and refuses floats that overflow.
func (p *jsonParser) number() (jsonValue, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos >= len(p.data) {
		return jsonValue{}, errJSON
	}
	if p.data[p.pos] == '0' {
		p.pos++
		if p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			return jsonValue{}, errJSON
		}
	} else if digits() == 0 {
		return jsonValue{}, errJSON
	}
	isFloat := false
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		isFloat = true
		if digits() == 0 {
			return jsonValue{}, errJSON
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		isFloat = true
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return jsonValue{}, errJSON
		}
	}
	text := string(p.data[start:p.pos])
	if isFloat || len(text) > 19 {
		f, err := strconv.ParseFloat(text, 64)
		if math.IsInf(f, 0) || (err != nil && !errors.Is(err, strconv.ErrRange)) {
			return jsonValue{}, errJSON
		}
	}
	return jsonValue{kind: jsonNumber, s: text}, nil
}

// integer reads a number as serde_json's Number::as_i64 does: an integer
// literal that fits in i64 ("-0", fractions and exponents are floats).
func (v jsonValue) integer() (int64, bool) {
	if v.kind != jsonNumber || v.s == "-0" {
		return 0, false
	}
	for i := 0; i < len(v.s); i++ {
		if c := v.s[i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v.s, 10, 64)
	return n, err == nil
}

// toAny converts to plain Go values (numbers as json.Number-like float64
// or int64), for custom claims. Later duplicate keys win, as in serde_json.
func (v jsonValue) toAny() any {
	switch v.kind {
	case jsonNull:
		return nil
	case jsonBool:
		return v.b
	case jsonString:
		return v.s
	case jsonNumber:
		if n, ok := v.integer(); ok {
			return n
		}
		f, _ := strconv.ParseFloat(v.s, 64)
		return f
	case jsonArray:
		out := make([]any, len(v.arr))
		for i, item := range v.arr {
			out[i] = item.toAny()
		}
		return out
	default:
		out := make(map[string]any, len(v.obj))
		for _, m := range v.obj {
			out[m.key] = m.value.toAny()
		}
		return out
	}
}
