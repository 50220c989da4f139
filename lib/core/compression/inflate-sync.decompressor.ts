import { constants, createInflate } from 'node:zlib';
import { NativeSyncDecompressor, supportsNativeSync, type NativeEngine } from './native-sync.decompressor';
import { ZlibMessageBuffer } from './zlib-message-buffer';

/** True when this Node exposes the synchronous zlib handle that {@link InflateSyncDecompressor} needs. */
export function supportsInflateSync(): boolean {
  return supportsNativeSync(() => createInflate() as unknown as NativeEngine);
}

/**
 * `zlib-stream` inflated on the calling thread with `node:zlib`'s own native handle (the same calls Node's own
 * `inflateSync` makes). WebSocket messages are gathered until one ends with `00 00 ff ff`.
 */
export class InflateSyncDecompressor extends NativeSyncDecompressor {
  private readonly message: ZlibMessageBuffer;

  constructor(onPayload: (payload: Buffer) => void, onError: (error: Error) => void, maxBytes: number) {
    super(createInflate() as unknown as NativeEngine, constants.Z_SYNC_FLUSH, onPayload, onError, maxBytes);
    this.message = new ZlibMessageBuffer(maxBytes, (message) => this.fail(message));
  }

  push(data: Buffer): void {
    if (this.closed) return;
    const input = this.message.add(data);
    if (input) this.deliver(input);
  }

  override close(): void {
    this.message.clear();
    super.close();
  }
}
