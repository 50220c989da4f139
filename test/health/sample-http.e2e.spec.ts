import { after, describe, it } from 'node:test';
import { expect } from 'expect';
import type { ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { spawnSample } from '../helpers/sample-process';

const LIMIT_MS = 60_000;

let child: ChildProcess | null = null;

void after(() => {
  // Never leave the bot running, whatever happened.
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
});

/** One GET on a fresh connection. */
function httpGet(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
    });
    request.on('error', reject);
    request.setTimeout(5_000, () => request.destroy(new Error(`GET ${url} timed out`)));
  });
}

/** The sample started with SAMPLE_HTTP_PORT=0 (and `extraEnv`), once it serves HTTP. */
async function startSample(extraEnv: NodeJS.ProcessEnv): Promise<{ url: string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; output: () => string; proc: ChildProcess }> {
  const proc = spawnSample({ SAMPLE_HTTP_PORT: '0', ...extraEnv }, extraEnv.SAMPLE_KEEP_SERVING === undefined ? ['SAMPLE_HTTP_HOST', 'SAMPLE_KEEP_SERVING'] : ['SAMPLE_HTTP_HOST']);
  child = proc;
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (proc.pid !== undefined) process.kill(proc.pid, 'SIGKILL');
      reject(new Error(`the sample did not exit within ${LIMIT_MS} ms:\n${output}`));
    }, LIMIT_MS);
    proc.once('error', reject);
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await waitForOutput(proc, exited, () => output, /serving (http:\/\/127\.0\.0\.1:\d+)\/health/);
  return { url, exited, output: () => output, proc };
}

/** The first group of `pattern` once the output matches it; rejects if the process exits first. */
function waitForOutput(proc: ChildProcess, exited: Promise<unknown>, output: () => string, pattern: RegExp): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = pattern.exec(output());
      if (!match) return;
      proc.stdout!.off('data', check);
      proc.stderr!.off('data', check);
      resolve(match[1] ?? match[0]);
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    check();
    exited.then(() => reject(new Error(`the sample exited before printing ${pattern}:\n${output()}`)), reject);
  });
}

void describe('sample bot with SAMPLE_HTTP_PORT', () => {
  void it('serves GET /health and GET /metrics during its demo, then exits 0 by itself', async () => {
    const { url, exited, output } = await startSample({});

    const health = await httpGet(`${url}/health`);
    expect(health.status).toBe(200);
    const body = JSON.parse(health.text);
    expect(body.status).toBe('ok');
    expect(Object.keys(body.details['discord-gateway'].shards)).toEqual(['0', '1']);

    const metrics = await httpGet(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^discord_gateway_events_received_total\{shard="0",event="READY"\} 1$/m);
    expect(metrics.text).toMatch(/^discord_gateway_handshakes_total\{shard="1",type="identify"\} 1$/m);

    expect((await exited).code).toBe(0);
    expect(output()).toMatch(/\[Sample\] done/);
  });

  void it('with SAMPLE_KEEP_SERVING=1 keeps serving after the demo, until SIGTERM', async () => {
    const { url, exited, output, proc } = await startSample({ SAMPLE_KEEP_SERVING: '1' });
    await waitForOutput(proc, exited, output, /demo finished; SAMPLE_KEEP_SERVING=1: still serving until Ctrl\+C/);

    const health = await httpGet(`${url}/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text).status).toBe('ok');
    const metrics = await httpGet(`${url}/metrics`);
    expect(metrics.text).toMatch(/^discord_gateway_events_received_total\{shard="0",event="READY"\} 1$/m);
    expect(output()).not.toMatch(/\[Sample\] done/);

    process.kill(proc.pid!, 'SIGTERM');
    const { code, signal } = await exited;
    expect(code === 0 || signal === 'SIGTERM').toBe(true);
  });
});
