import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { expect } from 'expect';
import { CHAOS_FAULTS, MAX_RECONNECTS_PER_MINUTE, runChaos } from '../../bench/chaos/chaos-run';
import { LIBRARY_MUTATIONS, prepareLibraryCopy, runChaosOnCopy } from '../../bench/chaos/library-mutation';

void describe('chaos run (short)', () => {
  void it('delivers every event of every session exactly once and in order through 30 random faults on 2 shards', { timeout: 90_000 }, async () => {
    const lines: string[] = [];
    const report = await runChaos({ shards: 2, events: 2_000, faults: 30, eventsPerSecond: 200, seed: 7, log: (line) => lines.push(line) });

    // Every fault kind was injected at least once, each on a ready shard that came back.
    expect(report.faults).toBe(30);
    for (const kind of CHAOS_FAULTS) expect(report.faultsByKind[kind] ?? 0).toBeGreaterThanOrEqual(1);

    // (a) exactly once, in order, per session, though the gateway sent events twice; nothing lost but what the
    // protocol allows: events dispatched after the last heartbeat ACK of a session the gateway ended.
    expect(report.events).toBe(2_000);
    expect(report.duplicatesInjected).toBeGreaterThan(20);
    expect(report.duplicatesInjectedHandled).toBeGreaterThan(0);
    expect(report.malformedPayloads).toBeGreaterThanOrEqual(3);
    expect(report.lost).toBe(0);
    expect(report.duplicated).toBe(0);
    expect(report.outOfOrder).toBe(0);
    expect(report.unexpected).toBe(0);
    expect(report.uncaughtErrors).toBe(0);
    expect(report.invalidatedSessions).toBeGreaterThanOrEqual(7);
    expect(report.excusedLosses).toBeLessThanOrEqual(report.excusedLossesAllowed);
    for (const { excused, allowed } of Object.values(report.excusedByFault)) expect(excused).toBeLessThanOrEqual(allowed);
    expect(report.delivered + report.excusedLosses).toBeGreaterThanOrEqual(report.events);

    // (b) IDENTIFYs kept to the bucket/window rule (both shards share one bucket), by the client's send times.
    expect(report.identifies).toBeGreaterThanOrEqual(2 + report.invalidatedSessions);
    expect(report.identifyTimingViolations).toBe(0);

    // (c) no client connection sent more than the limit in any sliding window, though the limit was under
    // pressure, and the gateway closed none with 4008.
    expect(report.rateLimitViolations).toBe(0);
    expect(report.serverRateLimitCloses).toBe(0);
    expect(report.maxFramesInWindow).toBeLessThanOrEqual(120);
    expect(report.maxFramesInWindow).toBeGreaterThan(100);

    // (d) ready again after every fault, and at the end; (f) no reconnect storm, churn included.
    expect(report.notRecovered).toBe(0);
    expect(report.shardsNotReadyAtEnd).toBe(0);
    expect(report.maxReconnectsPerMinute).toBeGreaterThan(0);
    expect(report.maxReconnectsPerMinute).toBeLessThanOrEqual(MAX_RECONNECTS_PER_MINUTE);

    // (e) recovery times were measured and are ordered.
    expect(report.recovery.count).toBeGreaterThanOrEqual(report.faults - report.absorbed);
    expect(report.recovery.min).toBeLessThanOrEqual(report.recovery.p50);
    expect(report.recovery.p50).toBeLessThanOrEqual(report.recovery.p95);
    expect(report.recovery.p95).toBeLessThanOrEqual(report.recovery.max);

    expect(report.violations).toEqual([]);
    expect(report.failedChecks).toEqual([]);
    expect(report.pass).toBe(true);
    expect(lines.at(-1)).toBe(report.summary);
    expect(report.summary).toMatch(
      /^chaos: 2000 events, 30 faults, 0 lost, 0 duplicated, 0 out of order, \d+ excused losses, 0 identify violations, 0 rate-limit violations, \d+ duplicates injected, \d+ malformed payloads, max reconnects per minute \d+, recovery p50 \d+ ms p95 \d+ ms max \d+ ms: PASS$/,
    );
  });
});

void describe('chaos checker against library mutations', () => {
  void it('finds the anchor of every mutation exactly once in lib/, and names a missing one', () => {
    for (const mutation of LIBRARY_MUTATIONS) rmSync(prepareLibraryCopy(mutation), { recursive: true, force: true });
    expect(() => prepareLibraryCopy({ name: 'stale', description: '', anchor: 'no such source text', replacement: '' })).toThrow(
      /Mutation stale: its anchor "no such source text" occurs 0 times in lib\//,
    );
  });

  void it('fails, on the duplicate check, a library whose duplicate filter is disabled', { timeout: 60_000 }, async () => {
    const mutation = LIBRARY_MUTATIONS.find((m) => m.name === 'no-duplicate-filter')!;
    const dir = prepareLibraryCopy(mutation);
    try {
      const result = await runChaosOnCopy(dir, ['--shards=2', '--events=1000', '--faults=0', '--rate=400', '--seed=3'], 50_000);
      expect(result.report).not.toBeNull();
      const report = result.report!;
      expect(report.duplicatesInjectedHandled).toBeGreaterThan(0);
      expect(report.duplicated).toBeGreaterThan(0);
      expect(report.failedChecks).toContain('duplicated');
      expect(report.pass).toBe(false);
      expect(report.summary).toMatch(/ \d+ duplicated, .*: FAIL$/);
      expect(result.exitCode).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
