/** The envelope of a gateway payload, read without parsing its data. */
export interface FrameEnvelope {
  op: number;
  t: string | null;
  s: number | null;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;

function skipSpace(text: string, i: number): number {
  let c = text.charCodeAt(i);
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
  return i;
}

/**
 * Reads `op`, `t` and `s` from the top-level keys that come before `"d"` in a gateway payload, without parsing
 * `d`. Discord sends them first; returns null for any other layout (or anything unexpected), and the caller
 * parses the whole payload instead.
 */
export function peekFrame(text: string): FrameEnvelope | null {
  let op: number | undefined;
  let t: string | null | undefined;
  let s: number | null | undefined;
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== OPEN_BRACE) return null;
  i++;
  for (let keys = 0; keys < 4; keys++) {
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== QUOTE) return null;
    const keyEnd = text.indexOf('"', i + 1);
    if (keyEnd < 0) return null;
    const key = text.slice(i + 1, keyEnd);
    i = skipSpace(text, keyEnd + 1);
    if (text.charCodeAt(i) !== COLON) return null;
    i = skipSpace(text, i + 1);
    if (key === 'd') {
      return op !== undefined && t !== undefined && s !== undefined ? { op, t, s } : null;
    }
    const c = text.charCodeAt(i);
    let value: string | number | null;
    if (c === QUOTE) {
      const end = text.indexOf('"', i + 1);
      if (end < 0) return null;
      value = text.slice(i + 1, end);
      if (value.charCodeAt(value.length - 1) === BACKSLASH || value.includes('\\')) return null;
      i = end + 1;
    } else if (text.startsWith('null', i)) {
      value = null;
      i += 4;
    } else {
      let end = i;
      while (end < text.length && text.charCodeAt(end) >= 0x30 && text.charCodeAt(end) <= 0x39) end++;
      if (end === i || end - i > 15) return null;
      value = Number(text.slice(i, end));
      i = end;
    }
    if (key === 'op' && typeof value === 'number') op = value;
    else if (key === 't' && value !== null && typeof value !== 'string') return null;
    else if (key === 't') t = value as string | null;
    else if (key === 's' && value !== null && typeof value !== 'number') return null;
    else if (key === 's') s = value as number | null;
    else return null;
    i = skipSpace(text, i);
    if (text.charCodeAt(i) !== COMMA) return null;
    i++;
  }
  return null;
}
