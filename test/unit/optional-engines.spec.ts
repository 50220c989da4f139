import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import Module from 'node:module';
import * as zlib from 'node:zlib';
import { GatewayOptionsError, Shard } from '../../lib/nest';

/** Makes `require(name)` fail as it does when the package is not installed, for the packages in `hidden`. */
function hidePackages(hidden: string[]): () => void {
  const internals = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const original = internals._resolveFilename;
  internals._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (hidden.includes(request)) {
      const error = new Error(`Cannot find module '${request}'`) as NodeJS.ErrnoException;
      error.code = 'MODULE_NOT_FOUND';
      throw error;
    }
    return original.call(this, request, ...rest);
  };
  return () => {
    internals._resolveFilename = original;
  };
}

void describe('optional decompression engines', () => {
  const base = { id: 0, total: 1, token: 'valid-token', intents: 0, gatewayUrl: 'ws://127.0.0.1:1' };
  let restore: (() => void) | undefined;

  afterEach(() => {
    restore?.();
    restore = undefined;
  });

  for (const [engine, type] of [
    ['zlib-sync', 'zlib-stream'],
    ['fflate', 'zlib-stream'],
    ['fzstd', 'zstd-stream'],
  ] as const) {
    void it(`a configured '${engine}' that is not installed fails at startup, naming the option and the package`, () => {
      restore = hidePackages([engine]);
      let thrown: unknown;
      try {
        new Shard({ ...base, compression: { type, engine } as never });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(GatewayOptionsError);
      expect((thrown as GatewayOptionsError).option).toBe('compression.engine');
      expect((thrown as Error).message).toContain(`"${engine}"`);
      expect((thrown as Error).message).toContain('not installed');
    });
  }

  void it("'zstd-stream' with neither Node's zstd nor fzstd fails at startup instead of falling back to another compression", () => {
    if (typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function') {
      // This Node has zstd, so there is nothing missing to report: the option resolves to Node's engine.
      expect(new Shard({ ...base, compression: 'zstd-stream' }).info().id).toBe(0);
      return;
    }
    restore = hidePackages(['fzstd']);
    expect(() => new Shard({ ...base, compression: 'zstd-stream' })).toThrow(/"compression".*Node 22\.15.*"fzstd"/);
  });
});
