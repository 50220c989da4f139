import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { ZlibPipe } from '../compression/zlib-pipe';

interface ZstdCompressZlib {
  createZstdCompress?: (options: { flush: number }) => Transform;
  constants: { ZSTD_e_flush?: number };
}

const zstdZlib = zlib as unknown as ZstdCompressZlib;

/** Zstandard frame magic number, little-endian. */
const MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Frame header descriptor: no content size, not single-segment, no checksum, no dictionary; then a window of 128 KiB. */
const FRAME_HEADER = Buffer.from([0x00, 7 << 3]);
/** Largest block: the window size, and never more than 128 KiB. */
const MAX_BLOCK = 128 * 1024;

/**
 * The server side of `zstd-stream` for the local gateway: one zstd frame per connection that never ends, each
 * gateway message flushed so that it decompresses on its own. With Node's own zstd (Node 22.15+) the messages are
 * really compressed; elsewhere they go out as raw (stored) zstd blocks, which every decoder must accept and which
 * exercise the same framing.
 */
export class ZstdStreamEncoder {
  private readonly pipe: ZlibPipe | null;
  private started = false;

  constructor(onError: (error: Error) => void) {
    const create = zstdZlib.createZstdCompress;
    const flush = zstdZlib.constants.ZSTD_e_flush;
    this.pipe = typeof create === 'function' && flush !== undefined ? new ZlibPipe(create({ flush }), onError) : null;
  }

  /** True when messages are really compressed (Node's zstd), false when they go out as raw blocks. */
  get compresses(): boolean {
    return this.pipe !== null;
  }

  /** Encodes one gateway message; `done` receives its bytes (one WebSocket message). */
  write(text: string | Buffer, done: (encoded: Buffer) => void): void {
    if (this.pipe) {
      this.pipe.write(text, done);
      return;
    }
    const data = typeof text === 'string' ? Buffer.from(text) : text;
    const parts: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      parts.push(MAGIC, FRAME_HEADER);
    }
    for (let offset = 0; offset < data.length || offset === 0; offset += MAX_BLOCK) {
      const block = data.subarray(offset, offset + MAX_BLOCK);
      // Block header, 3 bytes little-endian: last-block flag 0, type 0 (raw), then the size.
      const header = block.length << 3;
      parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), block);
      if (data.length === 0) break;
    }
    // Hand over asynchronously, as the compressing path does, so that messages keep their order either way.
    const encoded = Buffer.concat(parts);
    queueMicrotask(() => done(encoded));
  }

  /** Releases the compressor. */
  close(): void {
    this.pipe?.close();
  }
}
