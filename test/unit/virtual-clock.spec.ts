import { describe, it } from 'node:test';
import { expect } from 'expect';
import { VirtualClock } from '../../lib/nest/testing';

void describe('VirtualClock', () => {
  void it('starts at the given time and moves only when advanced', () => {
    const clock = new VirtualClock(1_000);
    expect(clock.now()).toBe(1_000);
    clock.advance(250);
    expect(clock.now()).toBe(1_250);
    expect(new VirtualClock().now()).toBe(0);
  });

  void it('fires a timer at its due time, not a millisecond before, and reads that time in the callback', () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 100);
    clock.advance(99);
    expect(seen).toEqual([]);
    clock.advance(50);
    expect(seen).toEqual([100]);
    expect(clock.now()).toBe(149);
    expect(clock.pending).toBe(0);
  });

  void it('fires nothing, not even a 0 ms timer, until advanced', () => {
    const clock = new VirtualClock();
    let fired = 0;
    clock.setTimeout(() => fired++, 0);
    clock.setTimeout(() => fired++, -5);
    expect(fired).toBe(0);
    expect(clock.advance(0)).toBe(2);
    expect(fired).toBe(2);
  });

  void it('fires by due time, then in the order the timers were started', () => {
    const clock = new VirtualClock();
    const order: string[] = [];
    clock.setTimeout(() => order.push('b@20'), 20);
    clock.setTimeout(() => order.push('a@10'), 10);
    clock.setTimeout(() => order.push('c@20'), 20);
    clock.setTimeout(() => order.push('d@10'), 10);
    clock.advance(20);
    expect(order).toEqual(['a@10', 'd@10', 'b@20', 'c@20']);
  });

  void it('fires timers that callbacks start when they fall due within the same advance', () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 0);
      clock.setTimeout(() => seen.push(clock.now()), 30);
      clock.setTimeout(() => seen.push(clock.now()), 60);
    }, 10);
    clock.advance(50);
    expect(seen).toEqual([10, 10, 40]);
    clock.advance(20);
    expect(seen).toEqual([10, 10, 40, 70]);
  });

  void it('repeats an interval every period until cleared, by clearInterval or clearTimeout', () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    const timer = clock.setInterval(() => seen.push(clock.now()), 100);
    clock.advance(350);
    expect(seen).toEqual([100, 200, 300]);
    clock.clearTimeout(timer);
    clock.advance(1_000);
    expect(seen).toEqual([100, 200, 300]);
    const other = clock.setInterval(() => seen.push(clock.now()), 0);
    clock.advance(2);
    // A period under 1 ms is 1 ms.
    expect(seen).toEqual([100, 200, 300, 1_351, 1_352]);
    clock.clearInterval(other);
    expect(clock.pending).toBe(0);
  });

  void it('cancels a timer, and ignores a timer that already fired or belongs to another clock', () => {
    const clock = new VirtualClock();
    let fired = 0;
    const timer = clock.setTimeout(() => fired++, 10);
    clock.clearTimeout(timer);
    clock.advance(10);
    expect(fired).toBe(0);
    const done = clock.setTimeout(() => fired++, 1);
    clock.advance(1);
    clock.clearTimeout(done);
    new VirtualClock().clearTimeout(clock.setTimeout(() => fired++, 1));
    clock.advance(1);
    expect(fired).toBe(2);
  });

  void it('runs every timer with runAll and advanceToNext, and refuses to run an interval forever', () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 500);
    clock.setTimeout(() => seen.push(clock.now()), 200);
    expect(clock.nextDueAt).toBe(200);
    expect(clock.advanceToNext()).toBe(1);
    expect(clock.now()).toBe(200);
    expect(clock.runAll()).toBe(1);
    expect(seen).toEqual([200, 500]);
    expect(clock.nextDueAt).toBeNull();
    expect(clock.advanceToNext()).toBe(0);

    clock.setInterval(() => undefined, 10);
    expect(() => clock.runAll(5)).toThrow('still 1 timer(s) after 5 callbacks');
  });

  void it('rejects a negative or non-finite advance', () => {
    const clock = new VirtualClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(0);
  });
});
