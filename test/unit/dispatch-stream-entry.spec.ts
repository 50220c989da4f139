import { describe, it } from 'node:test';
import { expect } from 'expect';
import { dataPayload, decodeDispatchEntry, encodeDispatchEntry, type EntryEvent } from '../../lib/redis/dispatch-stream-entry';

function frame(s: number, d: unknown): Buffer {
  return Buffer.from(JSON.stringify({ op: 0, t: 'MESSAGE_CREATE', s, d }));
}

/** Fields as XREADGROUP gives them back to a reader asking for Buffers. */
function asBuffers(fields: (string | Buffer)[]): Buffer[] {
  return fields.map((field) => (Buffer.isBuffer(field) ? field : Buffer.from(field)));
}

void describe('stream entries: the events of one publish in one entry', () => {
  const events: EntryEvent[] = [
    { t: 'MESSAGE_CREATE', s: 7, sessionId: 'abc', receivedAt: 1.5, payload: frame(7, { content: 'ünïcode ✓ 🎉' }) },
    { t: 'MESSAGE_CREATE', s: 8, sessionId: 'abc', receivedAt: 2.25, payload: dataPayload({ content: 'decoded' }) },
    { t: 'GUILD_CREATE', s: 9, receivedAt: 3, payload: frame(9, null) },
  ];

  void it('reads back every event, with multi-byte text, whether the fields come as Buffers or strings', () => {
    const fields = encodeDispatchEntry(4, events);
    const expected = [
      { t: 'MESSAGE_CREATE', s: 7, shardId: 4, sessionId: 'abc', d: { content: 'ünïcode ✓ 🎉' }, receivedAt: 1.5 },
      { t: 'MESSAGE_CREATE', s: 8, shardId: 4, sessionId: 'abc', d: { content: 'decoded' }, receivedAt: 2.25 },
      { t: 'GUILD_CREATE', s: 9, shardId: 4, sessionId: undefined, d: null, receivedAt: 3 },
    ];
    for (const form of [asBuffers(fields), fields.map((field) => field.toString())]) {
      const decoded = decodeDispatchEntry(form);
      expect(decoded).toEqual({ ok: true, shardId: 4, events: expected.map((event) => ({ ok: true, event })) });
    }
  });

  void it('a broken event costs only itself; a broken layout is one problem for the entry', () => {
    const broken = encodeDispatchEntry(0, [
      events[0],
      { ...events[1], payload: Buffer.from('{"d":') },
      { ...events[1], t: '' },
      { ...events[1], s: -1 },
      { ...events[1], payload: Buffer.from('{"op":0}') },
      events[2],
    ]);
    const decoded = decodeDispatchEntry(asBuffers(broken));
    if (!decoded.ok) throw new Error(decoded.problem);
    expect(decoded.events.map((event) => (event.ok ? event.event.s : event.problem))).toEqual([
      7,
      'its payload is not JSON',
      't (event name) is missing',
      's (sequence) is not an integer >= 0',
      'its payload has no d',
      9,
    ]);

    const meta = (list: unknown) => ['sh', '0', 'm', JSON.stringify(list), 'p', '{"d":1}'];
    expect(decodeDispatchEntry('not fields')).toEqual({ ok: false, problem: 'fields are not name/value pairs' });
    expect(decodeDispatchEntry(['sh'])).toEqual({ ok: false, problem: 'fields are not name/value pairs' });
    expect(decodeDispatchEntry(['sh', 'x', 'm', '[]', 'p', ''])).toEqual({ ok: false, problem: 'sh (shard id) is not an integer >= 0' });
    expect(decodeDispatchEntry(['m', '[]', 'p', ''])).toEqual({ ok: false, problem: 'sh (shard id) is not an integer >= 0' });
    expect(decodeDispatchEntry(['sh', '0', 'm', '[', 'p', ''])).toEqual({ ok: false, problem: 'm (event list) is not JSON' });
    expect(decodeDispatchEntry(meta([]))).toEqual({ ok: false, problem: 'm (event list) is not a non-empty array' });
    expect(decodeDispatchEntry(['sh', '0', 'm', '[["A",1,"",0,7]]'])).toEqual({ ok: false, problem: 'p (payloads) is missing' });
    expect(decodeDispatchEntry(meta([['A', 1, '', 0]]))).toEqual({ ok: false, problem: 'm (event list) has an event without a byte length' });
    expect(decodeDispatchEntry(meta([['A', 1, '', 0, 8]]))).toEqual({ ok: false, problem: 'm (event list) gives 8 payload bytes, p has 7' });
    expect(decodeDispatchEntry(meta([['A', 1, 5, 0, 7]]))).toEqual({ ok: true, shardId: 0, events: [{ ok: false, problem: 'the session id is not a string' }] });
  });

  void it('data JSON.stringify cannot write makes dataPayload throw (the publisher skips and counts it)', () => {
    const deep = JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)) as unknown;
    expect(() => dataPayload(deep)).toThrow();
  });
});
