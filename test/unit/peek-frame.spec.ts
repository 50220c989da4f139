import { describe, it } from 'node:test';
import { expect } from 'expect';
import { DispatchFilter, peekFrame } from '../../lib/nest';

void describe('peekFrame', () => {
  void it("reads op, t and s in Discord's order without touching d", () => {
    expect(peekFrame('{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":')).toEqual({ op: 0, t: 'MESSAGE_CREATE', s: 42 });
  });

  void it('reads any order of the keys before d, with white space', () => {
    expect(peekFrame(' { "op" : 0 , "t":"TYPING_START", "s" : 7, "d": null}')).toEqual({ op: 0, t: 'TYPING_START', s: 7 });
  });

  void it('reads non-dispatch payloads with null t and s', () => {
    expect(peekFrame('{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}')).toEqual({ op: 10, t: null, s: null });
  });

  void it('gives up (null) when d comes before the envelope', () => {
    expect(peekFrame('{"d":{},"t":"MESSAGE_CREATE","s":1,"op":0}')).toBeNull();
  });

  void it('gives up on unknown keys, escapes, wrong types and truncated text', () => {
    expect(peekFrame('{"x":1,"t":"A","s":1,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A\\"B","s":1,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":5,"s":1,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":"1","op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":1')).toBeNull();
    expect(peekFrame('[1,2,3]')).toBeNull();
    expect(peekFrame('')).toBeNull();
  });

  void it('reads the same from bytes (Buffer or Uint8Array), within the first 160 bytes only', () => {
    const text = '{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"é"}}';
    expect(peekFrame(Buffer.from(text))).toEqual({ op: 0, t: 'MESSAGE_CREATE', s: 42 });
    expect(peekFrame(new Uint8Array(Buffer.from(text)))).toEqual({ op: 0, t: 'MESSAGE_CREATE', s: 42 });
    expect(peekFrame(Buffer.from(`{"t":"${'A'.repeat(170)}","s":1,"op":0,"d":{}}`))).toBeNull();
    expect(peekFrame(Buffer.from(`${' '.repeat(150)}{"t":"A","s":1,"op":0,"d":{}}`))).toBeNull();
  });

  void it('gives up on a non-ASCII event name and on keys that only look like op', () => {
    expect(peekFrame(Buffer.from('{"t":"MESSAGE_CRÉATE","s":1,"op":0,"d":{}}'))).toBeNull();
    expect(peekFrame('{"t":"A","s":1,"o":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":1,"ox":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":nul,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":1,"op":null,"d":{}}')).toBeNull();
  });

  void it('leaves what JSON.parse would reject to JSON.parse: leading zeros, control characters in the name', () => {
    expect(peekFrame('{"t":"A","s":01,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame('{"t":"A","s":0,"op":0,"d":{}}')).toEqual({ op: 0, t: 'A', s: 0 });
    expect(peekFrame('{"t":"A\u0001","s":1,"op":0,"d":{}}')).toBeNull();
    expect(peekFrame(Buffer.from('{"t":"A\u001fB","s":1,"op":0,"d":{}}'))).toBeNull();
  });

  void it('refuses numbers too long to be exact', () => {
    expect(peekFrame('{"t":"A","s":12345678901234567890,"op":0,"d":{}}')).toBeNull();
  });
});

void describe('DispatchFilter', () => {
  void it('decodes everything by default', () => {
    const filter = new DispatchFilter();
    expect(filter.decodesAll).toBe(true);
    expect(filter.wants('ANYTHING')).toBe(true);
  });

  void it('decodes only the listed names plus the events the core needs, and grows at run time', () => {
    const filter = new DispatchFilter(['MESSAGE_CREATE']);
    expect(filter.wants('MESSAGE_CREATE')).toBe(true);
    expect(filter.wants('TYPING_START')).toBe(false);
    for (const t of ['READY', 'RESUMED', 'GUILD_CREATE', 'GUILD_DELETE']) expect(filter.wants(t)).toBe(true);
    filter.add('TYPING_START');
    expect(filter.wants('TYPING_START')).toBe(true);
    filter.allowAll();
    expect(filter.wants('PRESENCE_UPDATE')).toBe(true);
  });
});
