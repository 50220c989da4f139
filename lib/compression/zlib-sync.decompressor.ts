import type { IDecompressor } from '../interfaces/decompressor.interface';
import { endsWithZlibSuffix } from './zlib-suffix';

/** The part of the optional `zlib-sync` package this library uses. */
interface ZlibSyncModule {
  Z_SYNC_FLUSH: number;
  Inflate: new (options?: { chunkSize?: number; to?: 'string' }) => {
    push(data: Buffer, flush: number): void;
    err: number;
    msg?: string;
    result?: Buffer | string;
  };
}

let loaded: ZlibSyncModule | null | undefined;

/** The `zlib-sync` module when it is installed, else null. */
export function loadZlibSync(): ZlibSyncModule | null {
  if (loaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require('zlib-sync') as ZlibSyncModule;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/**
 * `zlib-stream` transport compression with the native `zlib-sync` package: inflates on the calling thread,
 * in order, with one context per connection. Payloads come out as strings, ready for `JSON.parse`.
 */
export class ZlibSyncDecompressor implements IDecompressor {
  private inflate: InstanceType<ZlibSyncModule['Inflate']> | null;
  private pending: Buffer[] = [];

  constructor(
    private readonly zlib: ZlibSyncModule,
    private readonly onPayload: (payload: string) => void,
    private readonly onError: (error: Error) => void,
  ) {
    this.inflate = new zlib.Inflate({ chunkSize: 128 * 1024, to: 'string' });
  }

  push(data: Buffer): void {
    const inflate = this.inflate;
    if (!inflate) return;
    this.pending.push(data);
    if (!endsWithZlibSuffix(this.pending)) return;
    const input = this.pending.length === 1 ? data : Buffer.concat(this.pending);
    this.pending = [];
    inflate.push(input, this.zlib.Z_SYNC_FLUSH);
    if (inflate.err) {
      this.close();
      this.onError(new Error(`inflate failed (${inflate.err}${inflate.msg ? `: ${inflate.msg}` : ''})`));
      return;
    }
    const result = inflate.result;
    if (result !== undefined) this.onPayload(typeof result === 'string' ? result : result.toString());
  }

  close(): void {
    this.inflate = null;
    this.pending = [];
  }
}
