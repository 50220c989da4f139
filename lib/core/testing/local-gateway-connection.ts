import type { IncomingHttpHeaders } from 'node:http';
import { constants, createDeflate, deflateSync } from 'node:zlib';
import WebSocket from 'ws';
import { ZlibPipe } from '../compression/zlib-pipe';
import type { RecordedFrame } from './recorded-frame.interface';
import { ZstdStreamEncoder } from './zstd-stream.encoder';

/** Smallest payload the local gateway compresses under payload compression. */
export const PAYLOAD_COMPRESSION_MIN_BYTES = 256;

/**
 * What a {@link LocalGatewayConnection} uses of its server-side socket (a `ws` WebSocket). Declared here so that
 * the package's public types do not need `@types/ws`.
 */
export interface LocalGatewaySocket {
  readonly readyState: number;
  send(data: string | Buffer, options: { binary: boolean }): void;
  pause(): void;
  resume(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

/**
 * One client connection to the {@link LocalGateway}: what it asked for, what it sent, and a way to send to it.
 */
export class LocalGatewayConnection {
  /** Shard id, once the client identified or resumed. */
  shardId: number | null = null;
  /** Session the connection carries, once identified or resumed. */
  sessionId: string | null = null;
  /** True once IDENTIFY or RESUME was accepted on this connection. */
  handshakeDone = false;
  /** Whether heartbeats on this connection are acknowledged. */
  acks = true;
  /**
   * Sequence of the session's newest dispatch when the last heartbeat ACK was written to this connection's socket
   * (null before the first ACK, or without a session): every event up to it was written before that ACK.
   */
  lastAckSequence: number | null = null;
  /** The sequence (`d`) of the heartbeat that ACK answered: what the client said it had received by then. */
  lastAckedHeartbeat: number | null = null;
  /** Payloads received on this connection. */
  readonly frames: RecordedFrame[] = [];
  /** Close code once closed (1006 when the TCP connection dropped). */
  closeCode: number | null = null;
  /** When the connection was opened and closed (`Date.now()`), as the server saw it; `closedAt` is null while open. */
  readonly openedAt = Date.now();
  closedAt: number | null = null;
  /** True once the server started the close. */
  closedByServer = false;
  /** Port of the client's end of the TCP connection. */
  remotePort: number | null = null;
  /**
   * True once the client identified with `compress: true` on a connection without transport compression: from
   * then on, payloads of {@link PAYLOAD_COMPRESSION_MIN_BYTES} or more go out zlib-compressed one by one, in
   * binary messages, and smaller ones as text.
   */
  payloadCompression = false;
  /** WebSocket messages sent to the client, by frame type. */
  readonly sentMessages = { text: 0, binary: 0 };
  /** Timestamps of received frames, for the command rate limit. */
  readonly receivedAt: number[] = [];

  private readonly deflate: ZlibPipe | null;
  private readonly zstd: ZstdStreamEncoder | null;
  /** Messages handed to a compressor whose output has not been written yet, and who waits for them. */
  private compressing = 0;
  private sentWaiters: (() => void)[] = [];

  constructor(
    /** Sequential id, from 1. */
    readonly id: number,
    private readonly ws: LocalGatewaySocket,
    /** Request path, e.g. `/` or `/resume`. */
    readonly path: string,
    /** Query parameters the client connected with. */
    readonly query: URLSearchParams,
    /** Request headers of the WebSocket upgrade. */
    readonly headers: IncomingHttpHeaders,
    private readonly framesPerMessage: number,
  ) {
    this.deflate =
      query.get('compress') === 'zlib-stream'
        ? new ZlibPipe(createDeflate({ flush: constants.Z_SYNC_FLUSH }), () => this.drop())
        : null;
    this.zstd = query.get('compress') === 'zstd-stream' ? new ZstdStreamEncoder(() => this.drop()) : null;
  }

  /** True when the client asked for transport compression in the URL (payload compression is then refused). */
  get transportCompression(): boolean {
    return this.query.has('compress');
  }

  /** True while the WebSocket is open. */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a payload, compressed when the client asked for zlib-stream or zstd-stream. `onWritten` runs once it was
   * written to the socket (never when the connection closed first).
   */
  send(payload: object, onWritten?: () => void): void {
    this.sendText(JSON.stringify(payload), onWritten);
  }

  /**
   * Sends text as one gateway message (compressed when the client asked for it), even if it is not JSON. A Buffer
   * goes out as the message's bytes as they are, even if they are not valid UTF-8 (in a text frame when uncompressed).
   */
  sendText(text: string | Buffer, onWritten?: () => void): void {
    if (!this.open) return;
    if (this.zstd) {
      // zstd-stream: every WebSocket message is exactly one gateway message.
      this.compressing++;
      this.zstd.write(text, (encoded) => {
        if (this.open) {
          this.sentMessages.binary++;
          this.ws.send(encoded, { binary: true });
          onWritten?.();
        }
        this.written();
      });
      return;
    }
    if (!this.deflate) {
      const compress = this.payloadCompression && text.length >= PAYLOAD_COMPRESSION_MIN_BYTES;
      this.sentMessages[compress ? 'binary' : 'text']++;
      this.ws.send(compress ? deflateSync(text) : text, { binary: compress });
      onWritten?.();
      return;
    }
    this.compressing++;
    this.deflate.write(text, (compressed) => {
      const parts = Math.max(1, Math.min(this.framesPerMessage, compressed.length));
      const size = Math.ceil(compressed.length / parts);
      const open = this.open;
      for (let offset = 0; open && offset < compressed.length; offset += size) {
        this.sentMessages.binary++;
        this.ws.send(compressed.subarray(offset, offset + size), { binary: true });
      }
      if (open) onWritten?.();
      this.written();
    });
  }

  /**
   * Calls `callback` once every message handed to {@link sendText} so far has been written to the socket (at once
   * when nothing waits for a compressor), e.g. to close right after a message really went out.
   */
  whenSent(callback: () => void): void {
    if (this.compressing === 0) callback();
    else this.sentWaiters.push(callback);
  }

  /** One compressor output was written (or dropped, the connection being closed). */
  private written(): void {
    this.compressing--;
    if (this.compressing === 0) for (const waiter of this.sentWaiters.splice(0)) waiter();
  }

  /** Sends raw bytes as one binary frame, bypassing compression. */
  sendBytes(bytes: Buffer): void {
    if (this.open) this.ws.send(bytes, { binary: true });
  }

  /** Stops reading this connection's socket for `ms`, then reads on (slow server reads). */
  pauseReads(ms: number): void {
    if (!this.open) return;
    this.ws.pause();
    setTimeout(() => this.ws.resume(), ms).unref();
  }

  /** Closes with a close frame. */
  close(code: number, reason = ''): void {
    this.closedByServer = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }

  /** Drops the TCP connection with no close frame. */
  drop(): void {
    this.closedByServer = true;
    this.ws.terminate();
  }
}
