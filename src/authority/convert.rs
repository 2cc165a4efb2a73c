//! Conversions between the proto's well-known types and the domain's:
//! `google.protobuf.Struct` ↔ JSON objects (custom claims), Unix times ↔
//! `Timestamp`. Used by the service and the client subcommands alike.

use serde_json::{Map, Value};

/// Proto `Value` → JSON, refusing NaN and infinities (not JSON).
fn to_json(value: prost_types::Value) -> Option<Value> {
    use prost_types::value::Kind;
    Some(match value.kind? {
        Kind::NullValue(_) => Value::Null,
        Kind::NumberValue(n) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Value::from(n as i64)
            } else {
                Value::from(serde_json::Number::from_f64(n)?)
            }
        }
        Kind::StringValue(s) => Value::String(s),
        Kind::BoolValue(b) => Value::Bool(b),
        Kind::StructValue(s) => Value::Object(struct_to_json(s)?),
        Kind::ListValue(l) => {
            Value::Array(l.values.into_iter().map(to_json).collect::<Option<_>>()?)
        }
    })
}

pub fn struct_to_json(s: prost_types::Struct) -> Option<Map<String, Value>> {
    s.fields
        .into_iter()
        .map(|(k, v)| Some((k, to_json(v)?)))
        .collect()
}

/// JSON value → protobuf `Value`.
fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// JSON object → protobuf `Struct`.
pub fn json_to_struct(m: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// Protobuf `Struct` → JSON, with non-finite numbers as null (for display).
pub fn struct_to_json_lossy(s: &prost_types::Struct) -> Value {
    struct_to_json(s.clone()).map_or(Value::Null, Value::Object)
}

/// Unix milliseconds → `Timestamp`.
pub fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix seconds → `Timestamp`.
pub fn timestamp_s(s: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    }
}

/// Decode `%XX` escapes (and `+` as a space when `plus_is_space`, as forms
/// write it); `None` for a broken escape. The bytes may be any: callers
/// that need text check UTF-8 themselves.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    loop {
        // The plain run up to the next escape goes over in one copy: a form's
        // token has none, and a byte at a time cost ~8k instructions per
        // introspection (BENCHMARKS.md, "Introspection, again").
        let next = if plus_is_space {
            memchr::memchr2(b'%', b'+', rest)
        } else {
            memchr::memchr(b'%', rest)
        };
        let Some(at) = next else {
            out.extend_from_slice(rest);
            return Some(out);
        };
        out.extend_from_slice(&rest[..at]);
        if rest[at] == b'+' {
            out.push(b' ');
            rest = &rest[at + 1..];
            continue;
        }
        let hex = |i: usize| rest.get(at + i).and_then(|&c| char::from(c).to_digit(16));
        out.push(u8::try_from(hex(1)? * 16 + hex(2)?).ok()?);
        rest = &rest[at + 3..];
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    /// The byte-at-a-time decoder this one replaced, as the reference.
    fn reference(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                        return None;
                    }
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                }
                b'+' if plus_is_space => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Some(out)
    }

    #[test]
    fn decodes_escapes_pluses_and_runs() {
        assert_eq!(percent_decode("a+b%41%4a%4A", true).unwrap(), b"a bAJJ");
        assert_eq!(percent_decode("a+b", false).unwrap(), b"a+b");
        assert_eq!(
            percent_decode("%C3%A9t%C3%A9", true).unwrap(),
            "été".as_bytes()
        );
        assert_eq!(percent_decode("", true).unwrap(), b"");
        for broken in ["%", "%4", "ab%4", "%G1", "%1G", "%+1", "%é"] {
            assert_eq!(percent_decode(broken, true), None, "{broken:?}");
        }
    }

    /// Every string of up to five symbols from an alphabet of the cases
    /// (plain, escape sign, plus, hex digits, a non-hex letter, a
    /// multi-byte character) decodes as the reference does, both ways.
    #[test]
    fn agrees_with_the_byte_at_a_time_decoder() {
        let alphabet = ["a", "%", "+", "4", "f", "G", "é"];
        let mut cases = vec![String::new()];
        let mut longest = vec![String::new()];
        for _ in 0..5 {
            longest = longest
                .iter()
                .flat_map(|c| alphabet.iter().map(move |a| format!("{c}{a}")))
                .collect();
            cases.extend(longest.iter().cloned());
        }
        assert_eq!(cases.len(), 19_608);
        for case in &cases {
            for plus in [true, false] {
                assert_eq!(
                    percent_decode(case, plus),
                    reference(case, plus),
                    "{case:?} {plus}"
                );
            }
        }
    }
}
