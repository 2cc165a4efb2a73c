// A strict JSON parser for token headers and payloads, so that this
// library reads a token exactly as the server's serde_json does:
// - integers and other numbers are told apart (a float `exp` is refused);
// - duplicate keys are recorded on the object, so the caller can refuse a
//   duplicate of a claim it reads (serde refuses those; other duplicates,
//   last one wins, as serde_json does);
// - lone UTF-16 surrogates in escapes, control characters, leading zeros,
//   trailing commas, a BOM or trailing data are errors;
// - numbers beyond f64's range, and nesting deeper than 127, are errors
//   (serde_json's "number out of range" and recursion limit).

/** A JSON number, kept as written. */
export class JsonNumber {
  constructor(
    readonly raw: string,
    /** Written without fraction or exponent. */
    readonly isInteger: boolean,
  ) {}
  valueOf(): number {
    return Number(this.raw);
  }
  toJSON(): number {
    return Number(this.raw);
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** The keys that occurred more than once in an object (absent when none did). */
export const DUPLICATES: unique symbol = Symbol("duplicate keys");

export class JsonError extends Error {}

/** serde_json's recursion limit: 128 levels refused, 127 accepted. */
const MAX_DEPTH = 127;

export function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const n = text.length;
  let depth = 0;

  const fail = (): never => {
    throw new JsonError("invalid JSON");
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const hex4 = (): number => {
    if (i + 4 > n) fail();
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = text.charCodeAt(i++);
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else return fail();
      v = v * 16 + d;
    }
    return v;
  };
  const str = (): string => {
    // at the opening quote
    i++;
    let out = "";
    let start = i;
    for (;;) {
      if (i >= n) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail();
      if (c >= 0xd800 && c <= 0xdfff) {
        // Raw surrogates come only from a valid UTF-8 decode, so they are
        // paired; check anyway.
        if (c <= 0xdbff) {
          const d = text.charCodeAt(i + 1);
          if (!(d >= 0xdc00 && d <= 0xdfff)) fail();
          i += 2;
          continue;
        }
        fail();
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      i++;
      const e = text.charCodeAt(i++);
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += "\\"; break;
        case 0x2f: out += "/"; break;
        case 0x62: out += "\b"; break;
        case 0x66: out += "\f"; break;
        case 0x6e: out += "\n"; break;
        case 0x72: out += "\r"; break;
        case 0x74: out += "\t"; break;
        case 0x75: {
          const u = hex4();
          if (u >= 0xd800 && u <= 0xdbff) {
            if (text.charCodeAt(i) !== 0x5c || text.charCodeAt(i + 1) !== 0x75) fail();
            i += 2;
            const l = hex4();
            if (!(l >= 0xdc00 && l <= 0xdfff)) fail();
            out += String.fromCharCode(u, l);
          } else if (u >= 0xdc00 && u <= 0xdfff) {
            fail();
          } else {
            out += String.fromCharCode(u);
          }
          break;
        }
        default:
          fail();
      }
      start = i;
    }
  };
  const digits = (): number => {
    const s = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) i++;
      else break;
    }
    return i - s;
  };
  const num = (): JsonNumber => {
    const s = i;
    let integer = true;
    if (text.charCodeAt(i) === 0x2d) i++;
    const c = text.charCodeAt(i);
    if (c === 0x30) {
      i++;
    } else if (c >= 0x31 && c <= 0x39) {
      digits();
    } else fail();
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      integer = false;
      if (digits() === 0) fail();
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      integer = false;
      const sign = text.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (digits() === 0) fail();
    }
    const raw = text.slice(s, i);
    // serde_json refuses a number beyond f64's range ("number out of range").
    if (!Number.isFinite(Number(raw))) fail();
    return new JsonNumber(raw, integer);
  };
  const lit = (word: string, v: JsonValue): JsonValue => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return v;
    }
    return fail();
  };
  const value = (): JsonValue => {
    ws();
    if (i >= n) fail();
    const c = text.charCodeAt(i);
    switch (c) {
      case 0x7b: {
        if (++depth > MAX_DEPTH) fail();
        i++;
        const obj: JsonObject = Object.create(null);
        let dups: Set<string> | undefined;
        ws();
        if (text.charCodeAt(i) === 0x7d) {
          i++;
          depth--;
          return obj;
        }
        for (;;) {
          ws();
          if (text.charCodeAt(i) !== 0x22) fail();
          const k = str();
          ws();
          if (text.charCodeAt(i) !== 0x3a) fail();
          i++;
          const v = value();
          if (Object.prototype.hasOwnProperty.call(obj, k)) (dups ??= new Set()).add(k);
          obj[k] = v;
          ws();
          const d = text.charCodeAt(i++);
          if (d === 0x2c) continue;
          if (d === 0x7d) break;
          fail();
        }
        if (dups) Object.defineProperty(obj, DUPLICATES, { value: dups, enumerable: false });
        depth--;
        return obj;
      }
      case 0x5b: {
        if (++depth > MAX_DEPTH) fail();
        i++;
        const arr: JsonValue[] = [];
        ws();
        if (text.charCodeAt(i) === 0x5d) {
          i++;
          depth--;
          return arr;
        }
        for (;;) {
          arr.push(value());
          ws();
          const d = text.charCodeAt(i++);
          if (d === 0x2c) continue;
          if (d === 0x5d) break;
          fail();
        }
        depth--;
        return arr;
      }
      case 0x22:
        return str();
      case 0x74:
        return lit("true", true);
      case 0x66:
        return lit("false", false);
      case 0x6e:
        return lit("null", null);
      default:
        return num();
    }
  };
  const v = value();
  ws();
  if (i !== n) fail();
  return v;
}

/** Did any of `keys` occur more than once in `obj`? */
export function hasDuplicateOf(obj: JsonObject, keys: readonly string[]): boolean {
  const dups = (obj as { [DUPLICATES]?: Set<string> })[DUPLICATES];
  if (!dups) return false;
  for (const k of keys) if (dups.has(k)) return true;
  return false;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/** A JSON value as plain JavaScript (numbers as `number`). */
export function toPlain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return Number(v.raw);
  if (Array.isArray(v)) return v.map(toPlain);
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = toPlain(v[k]!);
    return out;
  }
  return v;
}
