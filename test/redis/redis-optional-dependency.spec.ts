import { describe, it } from 'node:test';
import { expect } from 'expect';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Redis from 'ioredis';
import { createRedisClient, RedisIdentifyQueue } from '../../lib/redis';

const ROOT = join(__dirname, '..', '..');

/** Runs `code` in a fresh Node process (TypeScript through ts-node) in which `require('ioredis')` fails as if it were not installed. */
function runWithoutIoredis(code: string): { status: number | null; stdout: string; stderr: string } {
  const hideIoredis = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'ioredis' || request.startsWith('ioredis/')) {
        const error = new Error("Cannot find module '" + request + "'");
        error.code = 'MODULE_NOT_FOUND';
        throw error;
      }
      return resolve.call(this, request, ...rest);
    };
  `;
  const result = spawnSync(process.execPath, ['--require', 'ts-node/register/transpile-only', '-e', hideIoredis + code], {
    cwd: ROOT,
    env: { ...process.env, TS_NODE_PROJECT: join(ROOT, 'tsconfig.json') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

void describe('ioredis as an optional peer dependency', () => {
  void it('lets the main entry and the redis entry load without ioredis, and names the package when a Redis part is built', () => {
    const result = runWithoutIoredis(`
      require('reflect-metadata');
      const main = require('./lib/nest/index.ts');
      const redis = require('./lib/redis/index.ts');
      const loaded = Object.keys(require.cache).filter((path) => path.includes('/node_modules/ioredis/'));
      let message = 'no error';
      try {
        new redis.RedisSessionStore({ url: 'redis://127.0.0.1:1' });
      } catch (error) {
        message = error.message;
      }
      process.stdout.write(JSON.stringify({ main: typeof main.GatewayModule, queue: typeof redis.RedisIdentifyQueue, loaded, message }));
    `);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as { main: string; queue: string; loaded: string[]; message: string };
    expect(report.main).toBe('function');
    expect(report.queue).toBe('function');
    expect(report.loaded).toEqual([]);
    expect(report.message).toMatch(/optional peer dependency "ioredis"/);
    expect(report.message).toMatch(/npm install ioredis/);
  });
});

void describe('createRedisClient', () => {
  void it('creates an owned, lazily connecting client from a url and borrows a given client', () => {
    const created = createRedisClient({ url: 'redis://127.0.0.1:1' });
    expect(created.owned).toBe(true);
    expect(created.client.status).toBe('wait');
    created.client.disconnect();

    const given = new Redis('redis://127.0.0.1:1', { lazyConnect: true });
    const borrowed = createRedisClient({ client: given });
    expect(borrowed.owned).toBe(false);
    expect(borrowed.client).toBe(given);
    given.disconnect();
  });

  void it('refuses options with neither a client nor a url, and invalid queue settings', () => {
    expect(() => createRedisClient({} as never)).toThrow(/need `url`.*`nodes`.*`sentinels`.*`client`/);
    expect(() => new RedisIdentifyQueue({ url: 'redis://127.0.0.1:1', maxConcurrency: 0 })).toThrow(/maxConcurrency/);
    expect(
      () => new RedisIdentifyQueue({ url: 'redis://127.0.0.1:1', sessionStartLimit: { remaining: -1, total: 1, resetAfter: 1 } }),
    ).toThrow(/sessionStartLimit.remaining/);
  });
});
