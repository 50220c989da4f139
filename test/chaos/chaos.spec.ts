import { describe, it } from 'node:test';
import { expect } from 'expect';
import { CHAOS_FAULTS, runChaos } from '../../bench/chaos/chaos-run';

void describe('chaos run (short)', () => {
  void it('delivers every event of every session exactly once and in order through 30 random faults on 2 shards', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const report = await runChaos({ shards: 2, events: 2_000, faults: 30, eventsPerSecond: 200, seed: 7, log: (line) => lines.push(line) });

    // Every fault kind was injected at least once, each on a ready shard that came back.
    expect(report.faults).toBe(30);
    for (const kind of CHAOS_FAULTS) expect(report.faultsByKind[kind] ?? 0).toBeGreaterThanOrEqual(1);

    // (a) exactly once, in order, per session; only the tails of sessions the protocol ended are missing.
    expect(report.events).toBe(2_000);
    expect(report.lost).toBe(0);
    expect(report.duplicated).toBe(0);
    expect(report.outOfOrder).toBe(0);
    expect(report.unexpected).toBe(0);
    expect(report.delivered + report.droppedWithInvalidatedSessions).toBe(report.events);
    expect(report.invalidatedSessions).toBeGreaterThanOrEqual(6);

    // (b) IDENTIFYs kept to the bucket/window rule, by the gateway's count and by the recorded times.
    expect(report.identifies).toBeGreaterThanOrEqual(2 + report.invalidatedSessions);
    expect(report.identifyViolations).toBe(0);
    expect(report.identifyTimingViolations).toBe(0);

    // (c) no client connection sent more than the limit in any sliding window, though the limit was under pressure.
    expect(report.rateLimitViolations).toBe(0);
    expect(report.maxFramesInWindow).toBeLessThanOrEqual(120);
    expect(report.maxFramesInWindow).toBeGreaterThan(100);

    // (d) ready again after every fault, and at the end.
    expect(report.notRecovered).toBe(0);
    expect(report.shardsNotReadyAtEnd).toBe(0);

    // (e) recovery times were measured and are ordered.
    expect(report.recovery.count).toBeGreaterThanOrEqual(report.faults - report.absorbed);
    expect(report.recovery.min).toBeLessThanOrEqual(report.recovery.p50);
    expect(report.recovery.p50).toBeLessThanOrEqual(report.recovery.p95);
    expect(report.recovery.p95).toBeLessThanOrEqual(report.recovery.max);

    expect(report.violations).toEqual([]);
    expect(report.pass).toBe(true);
    expect(lines.at(-1)).toBe(report.summary);
    expect(report.summary).toMatch(/^chaos: 2000 events, 30 faults, 0 lost, 0 duplicated, 0 out of order, \d+ dropped with invalidated sessions, 0 identify violations, 0 rate-limit violations, recovery p50 \d+ ms p95 \d+ ms max \d+ ms: PASS$/);
  });
});
