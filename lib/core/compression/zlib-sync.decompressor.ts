import type { IDecompressor } from '../interfaces/decompressor.interface';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/** The part of the optional `zlib-sync` package used here. */
export interface ZlibSyncModule {
  Inflate: new (options?: { chunkSize?: number }) => { push(data: Buffer, flush: number): boolean; readonly result: Buffer | undefined; readonly err: number; readonly msg?: string };
  Z_SYNC_FLUSH: number;
}

/**
 * `zlib-stream` inflated with the optional native package `zlib-sync`: one context per connection; WebSocket
 * messages are gathered until one ends with `00 00 ff ff`, then inflated at once. The size cap is checked after.
 */
export class ZlibSyncDecompressor implements IDecompressor {
  private readonly message: ZlibMessageBuffer;
  private readonly inflate: InstanceType<ZlibSyncModule['Inflate']>;
  private closed = false;

  constructor(
    private readonly zlibSync: ZlibSyncModule,
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onError: (error: Error) => void,
    private readonly maxBytes: number,
  ) {
    this.message = new ZlibMessageBuffer(maxBytes, (message) => this.fail(message));
    this.inflate = new zlibSync.Inflate({ chunkSize: 64 * 1024 });
  }

  push(data: Buffer): void {
    if (this.closed) return;
    const input = this.message.add(data);
    if (!input) return;
    this.inflate.push(input, this.zlibSync.Z_SYNC_FLUSH);
    if (this.inflate.err) return this.fail(this.inflate.msg ?? `zlib error ${this.inflate.err}`);
    // Without a `to: 'string'` option, zlib-sync hands back a Buffer.
    const payload = this.inflate.result;
    if (payload === undefined) return;
    if (payload.length > this.maxBytes) return this.fail(`a decompressed message exceeded ${this.maxBytes} bytes`);
    this.onPayload(payload);
  }

  close(): void {
    this.closed = true;
    this.message.clear();
  }

  private fail(message: string): void {
    this.close();
    this.onError(new Error(message));
  }
}
