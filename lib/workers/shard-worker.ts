/**
 * Entry of a shard worker thread (see `strategy: { type: 'workers' }`): runs real {@link Shard}s, so the socket,
 * decompression and the dispatch filter run here. Only the events the filter wants cross to the main thread.
 * Identify grants and handshake guards come from the main thread; sessions cross with READY/RESUMED and
 * periodically, so that the main thread can resume them in a new worker when this one dies; each shard's figures
 * (counters, info) cross with every batch that follows a change.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { IIdentifyQueue } from '../core/interfaces/identify-queue.interface';
import type { HandshakeKind, ShardOptions } from '../core/interfaces/shard-options.interface';
import { abortError } from '../core/queue/abort-error';
import { DispatchFilter } from '../core/shard/dispatch-filter';
import { Shard, type ShardInfo } from '../core/shard/shard';
import { redactToken, type FromWorker, type ShardWorkerData, type ToWorker } from './worker-messages';

if (!parentPort) throw new Error('shard-worker must run in a worker thread');
const port = parentPort;
const data = workerData as ShardWorkerData;
const token = data.token;
/**
 * The worker's dispatch filter. An event it skips sends nothing across, so a skip makes sure a batch goes out:
 * the shard's figures (its counters, its sequence) cross with it.
 */
class ReportingDispatchFilter extends DispatchFilter {
  override wants(t: string): boolean {
    const wanted = super.wants(t);
    if (!wanted) scheduleFlush();
    return wanted;
  }
}

const filter = data.wanted === null ? new ReportingDispatchFilter() : new ReportingDispatchFilter(data.wanted);
if (data.forwarded === null) filter.forwardAll();
else filter.forward(...data.forwarded);
const shards = new Map<number, Shard>();
/** Handshake questions waiting for the main thread's answer, by id. */
const guards = new Map<number, (allowed: boolean) => void>();
/** What each shard's figures were when they last crossed, to send them only when they changed. */
const reportedStats = new Map<number, string>();
const acquires = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
/** Acquires the shard gave up (by id, with their shard), in case the grant crossed the abort on its way here. */
const abandoned = new Map<number, number>();
/** Abandoned acquires remembered at most: the main thread answers an abort it saw first with nothing. */
const MAX_ABANDONED_ACQUIRES = 1_000;
const GRANT_CROSSED_ABORT = 'IDENTIFY was not sent (its grant arrived after the shard gave its place up)';
const reported = new Map<number, string>();
let nextId = 1;

/**
 * Messages go out in batches, one postMessage per turn of the event loop (a message per event costs more than the
 * event's own decoding), and in order: a session report never overtakes the events before it.
 */
let outbox: FromWorker[] = [];
let flushScheduled = false;
/** Batches the main thread has not handled yet: past HOLD_AT, the shards stop reading until it catches up. */
let unacked = 0;
let holding = false;
const HOLD_AT = 8;
const RELEASE_AT = 2;
/** Shards paused by the main thread (cluster.pause), which catching up must not resume. */
const userPaused = new Set<number>();
const flush = (): void => {
  flushScheduled = false;
  const stats = changedStats();
  const batch = stats.length === 0 ? outbox : [...stats, ...outbox];
  outbox = [];
  if (batch.length === 0) return;
  port.postMessage({ type: 'batch', messages: batch } satisfies FromWorker);
  if (++unacked >= HOLD_AT && !holding) {
    holding = true;
    for (const s of shards.values()) s.pause();
  }
};
const acked = (): void => {
  unacked = Math.max(0, unacked - 1);
  if (holding && unacked <= RELEASE_AT) {
    holding = false;
    for (const s of shards.values()) if (!userPaused.has(s.id)) s.resume();
  }
};
function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flush);
}
const post = (message: FromWorker): void => {
  outbox.push(message);
  if (outbox.length >= 512) flush();
  else scheduleFlush();
};
const clean = (text: string): string => redactToken(text, token);
/** A shard's info with the texts that come from the server (close reason) or quote it (last error) redacted. */
const cleanInfo = (info: ShardInfo): ShardInfo => ({
  ...info,
  lastClose: info.lastClose && { ...info.lastClose, reason: clean(info.lastClose.reason) },
  lastError: info.lastError === null ? null : clean(info.lastError),
});

/** A `stats` message for each shard whose figures changed since they last crossed. */
function changedStats(): FromWorker[] {
  const stats: FromWorker[] = [];
  for (const shard of shards.values()) {
    const c = shard.counters;
    const info = shard.info();
    let reconnects = 0;
    for (const count of c.reconnectsByReason.values()) reconnects += count;
    const key = [
      c.receivedBytes, c.payloadBytes, c.identifies, c.resumes, c.commandsSent, reconnects, info.state, info.sequence,
      info.commandBudget.remaining, info.paused, info.lastError, info.lastClose?.code, info.latency.last,
    ].join(':');
    if (reportedStats.get(shard.id) === key) continue;
    reportedStats.set(shard.id, key);
    // Posted as they are: the structured clone copies the counters (maps included) at this very moment.
    stats.push({ type: 'stats', shardId: shard.id, info: cleanInfo(info), counters: c });
  }
  return stats;
}

/** Asks the main thread whether `shardId` may send its handshake (its `handshakeGuard`). */
function askGuard(shardId: number, kind: HandshakeKind): Promise<boolean> {
  const id = nextId++;
  return new Promise<boolean>((resolve) => {
    guards.set(id, resolve);
    post({ type: 'guard', id, shardId, kind });
  });
}

process.on('uncaughtException', (error: Error) => {
  post({ type: 'error', shardId: null, name: error?.name ?? 'Error', message: clean(`worker crashed: ${error?.message ?? String(error)}`) });
  flush();
  process.exit(1);
});

const identifyQueue: IIdentifyQueue = {
  acquire(shardId: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError());
    const id = nextId++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        acquires.delete(id);
        abandoned.set(id, shardId);
        if (abandoned.size > MAX_ABANDONED_ACQUIRES) abandoned.delete(abandoned.keys().next().value!);
        post({ type: 'abort-acquire', id });
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      acquires.set(id, {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      post({ type: 'acquire', id, shardId });
    });
  },
  refund(shardId: number): void {
    post({ type: 'refund-identify', shardId });
  },
  identified(shardId: number): void {
    post({ type: 'identified', shardId });
  },
};

function reportSession(shard: Shard): void {
  const session = shard.session;
  if (markReported(shard.id, session)) post({ type: 'session', shardId: shard.id, session });
}

/** Records `session` as the last one the main thread heard of; false when it already had it. */
function markReported(shardId: number, session: ShardOptions['session']): boolean {
  const key = session ? `${session.sessionId}:${session.sequence}` : '';
  if (reported.get(shardId) === key) return false;
  reported.set(shardId, key);
  return true;
}

function start(shardId: number, session: ShardOptions['session'], guarded: boolean): void {
  if (shards.has(shardId)) return;
  const shard = new Shard({
    ...(data.shardOptions as Partial<ShardOptions>),
    token,
    id: shardId,
    total: data.total,
    gatewayUrl: data.gatewayUrl,
    identifyQueue,
    session,
    dispatchFilter: filter,
    handshakeGuard: guarded ? (kind: HandshakeKind) => askGuard(shardId, kind) : undefined,
  } as ShardOptions);
  shards.set(shardId, shard);
  if (holding) shard.pause();
  shard.dispatch$.subscribe((event) => {
    // The session crosses with the event that (re)started it: known on the main thread as the event is delivered.
    const startsSession = event.t === 'READY' || event.t === 'RESUMED';
    const session = startsSession ? shard.session : undefined;
    if (startsSession) markReported(shardId, session);
    // JSON text crosses cheaper than a structured clone of the object (measured: about 20% less main-thread time).
    let d: string;
    try {
      d = JSON.stringify(event.d) ?? 'null';
    } catch (error) {
      // Data JSON.parse accepted but JSON.stringify cannot write (nesting past its stack): the event cannot cross.
      // Reported and skipped; throwing here would end the worker, and a resume would replay the event into it again.
      const problem = `d cannot be passed to the main thread: ${clean((error as Error)?.message ?? String(error))}`;
      post({ type: 'unreadable', shardId, t: event.t, s: event.s, problem, ...(startsSession ? { session } : {}) });
      return;
    }
    post({ type: 'dispatch', shardId, t: event.t, s: event.s, d, ...(startsSession ? { session } : {}) });
  });
  shard.forwarded$.subscribe((event) => post({ type: 'forwarded', shardId, t: event.t, s: event.s, frame: event.frame }));
  shard.state$.subscribe((state) => {
    const fatal = shard.fatalError;
    post({ type: 'state', shardId, state, ...(fatal ? { fatal: { code: fatal.code, reason: clean(fatal.reason) } } : {}) });
  });
  shard.debug$.subscribe((message) => post({ type: 'debug', shardId, message: clean(message) }));
  shard.error$.subscribe((error) => post({ type: 'error', shardId, name: error.name, message: clean(error.message) }));
  shard.connect().catch(() => undefined);
}

async function answer(id: number, work: () => Promise<unknown>): Promise<void> {
  try {
    const value = await work();
    post({ type: 'reply', id, ok: true, value: value ?? null });
  } catch (error) {
    const e = error as Error;
    post({ type: 'reply', id, ok: false, errorName: e?.name ?? 'Error', error: clean(e?.message ?? String(error)) });
  }
}

function shard(shardId: number): Shard {
  const found = shards.get(shardId);
  if (!found) throw new Error(`shard ${shardId} is not run by this worker`);
  return found;
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'start':
      start(message.shardId, message.session, message.guarded);
      break;
    case 'close':
      void answer(message.id, async () => {
        const session = await shard(message.shardId).close({ resumable: message.resumable });
        shards.delete(message.shardId);
        reported.delete(message.shardId);
        reportedStats.delete(message.shardId);
        return session;
      });
      break;
    case 'send':
      void answer(message.id, () => shard(message.shardId).send(message.command));
      break;
    case 'restart':
      void answer(message.id, () => shard(message.shardId).restart());
      break;
    case 'pause':
      userPaused.add(message.shardId);
      shards.get(message.shardId)?.pause();
      break;
    case 'resume':
      userPaused.delete(message.shardId);
      if (!holding) shards.get(message.shardId)?.resume();
      break;
    case 'ack':
      acked();
      break;
    case 'filter':
      if (message.wanted === null) filter.allowAll();
      else filter.add(...message.wanted);
      if (message.forwarded === null) filter.forwardAll();
      else filter.forward(...message.forwarded);
      break;
    case 'granted': {
      const waiter = acquires.get(message.id);
      acquires.delete(message.id);
      const gaveUp = abandoned.get(message.id);
      abandoned.delete(message.id);
      // Granted after the shard gave its place up (the two messages crossed): nobody writes this IDENTIFY.
      if (gaveUp !== undefined && message.error === undefined) {
        post({ type: 'debug', shardId: gaveUp, message: `${GRANT_CROSSED_ABORT}: its session start goes back to the identify queue` });
        post({ type: 'refund-identify', shardId: gaveUp });
      }
      if (message.error === undefined) waiter?.resolve();
      else {
        const error = new Error(message.error);
        error.name = 'AbortError';
        waiter?.reject(error);
      }
      break;
    }
    case 'ping':
      post({ type: 'pong', id: message.id, info: [...shards.values()].map((s) => cleanInfo(s.info())) });
      break;
    case 'guarded': {
      const answer = guards.get(message.id);
      guards.delete(message.id);
      answer?.(message.allowed);
      break;
    }
  }
});

setInterval(() => {
  for (const s of shards.values()) if (s.session) reportSession(s);
  // Figures that changed without an event (heartbeat round trips, a command written) cross now at the latest.
  scheduleFlush();
}, data.sessionReportMs).unref();

post({ type: 'hello' });
