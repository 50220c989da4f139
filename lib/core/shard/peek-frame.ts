/** The envelope of a gateway payload, read without parsing its data. */
export interface FrameEnvelope {
  op: number;
  t: string | null;
  s: number | null;
}

/** How far into a payload the envelope is looked for. */
export const PEEK_LIMIT = 160;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const LOWER_D = 0x64;
const LOWER_N = 0x6e;
const LOWER_O = 0x6f;
const LOWER_P = 0x70;
const LOWER_S = 0x73;
const LOWER_T = 0x74;
/** Stands for the two-letter key `op` (one-letter keys stand for themselves). */
const KEY_OP = -1;

function skipSpace(bytes: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Index of the next `"` in [from, end), or -1. */
function nextQuote(bytes: Buffer, from: number, end: number): number {
  const at = bytes.indexOf(QUOTE, from);
  return at >= 0 && at < end ? at : -1;
}

/**
 * Reads `op`, `t` and `s` from the top-level keys that come before `"d"` in a gateway payload, without parsing
 * `d`, looking at its first {@link PEEK_LIMIT} bytes only. Discord sends them first; returns null for any other
 * layout (or anything unexpected: escapes, control characters or non-ASCII bytes in names, numbers with leading
 * zeros or too long to be exact), and the caller parses
 * the whole payload instead.
 */
export function peekFrame(input: string | Uint8Array): FrameEnvelope | null {
  const bytes =
    typeof input === 'string'
      ? Buffer.from(input.slice(0, PEEK_LIMIT))
      : Buffer.isBuffer(input)
        ? input
        : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const end = Math.min(bytes.length, PEEK_LIMIT);
  let op: number | undefined;
  let t: string | null | undefined;
  let s: number | null | undefined;
  let i = skipSpace(bytes, 0, end);
  if (i >= end || bytes[i] !== OPEN_BRACE) return null;
  i++;
  for (let keys = 0; keys < 4; keys++) {
    i = skipSpace(bytes, i, end);
    if (i >= end || bytes[i] !== QUOTE) return null;
    const keyEnd = nextQuote(bytes, i + 1, end);
    if (keyEnd < 0) return null;
    const keyLength = keyEnd - i - 1;
    const k0 = bytes[i + 1];
    const key = keyLength === 1 ? k0 : keyLength === 2 && k0 === LOWER_O && bytes[i + 2] === LOWER_P ? KEY_OP : 0;
    i = skipSpace(bytes, keyEnd + 1, end);
    if (i >= end || bytes[i] !== COLON) return null;
    i = skipSpace(bytes, i + 1, end);
    if (i >= end) return null;
    if (key === LOWER_D) {
      return op !== undefined && t !== undefined && s !== undefined ? { op, t, s } : null;
    }
    const c = bytes[i];
    if (c === QUOTE) {
      // Only `t` is a string.
      const valueEnd = nextQuote(bytes, i + 1, end);
      if (key !== LOWER_T || valueEnd < 0) return null;
      for (let j = i + 1; j < valueEnd; j++) if (bytes[j] === BACKSLASH || bytes[j] >= 0x80 || bytes[j] < 0x20) return null;
      t = bytes.toString('latin1', i + 1, valueEnd);
      i = valueEnd + 1;
    } else if (c === LOWER_N) {
      if (i + 4 > end || bytes[i + 1] !== 0x75 || bytes[i + 2] !== 0x6c || bytes[i + 3] !== 0x6c) return null;
      if (key === LOWER_T) t = null;
      else if (key === LOWER_S) s = null;
      else return null;
      i += 4;
    } else {
      let value = 0;
      const start = i;
      while (i < end && bytes[i] >= 0x30 && bytes[i] <= 0x39) value = value * 10 + (bytes[i++] - 0x30);
      // JSON has no leading zeros: such a number is left to JSON.parse to reject.
      if (i === start || i - start > 15 || (bytes[start] === 0x30 && i - start > 1)) return null;
      if (key === KEY_OP) op = value;
      else if (key === LOWER_S) s = value;
      else return null;
    }
    i = skipSpace(bytes, i, end);
    if (i >= end || bytes[i] !== COMMA) return null;
    i++;
  }
  return null;
}
