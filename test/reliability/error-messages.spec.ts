import { describe, it } from 'node:test';
import { expect } from 'expect';
import { inflateSyncCompression, nodeZlibCompression, payloadCompression, zlibStreamCompression, type IDecompressorFactory } from '../../lib/nest';
import { createShard, eventually, startGateway, useGatewayAndShard } from '../helpers/gateway-test-kit';

/**
 * Every decompressor class the shard can use, each given bytes it cannot decompress. (The zstd engines share their
 * classes with zlib ones: fzstd with fflate, node:zlib's zstd with the synchronous inflate; mid-stream, zstd engines
 * wait for more data instead of failing on these bytes.)
 */
const factories: [string, IDecompressorFactory][] = [
  ['zlib-stream, synchronous inflate', inflateSyncCompression],
  ['zlib-stream, node:zlib stream', nodeZlibCompression],
  ['zlib-stream, zlib-sync', zlibStreamCompression('zlib-sync')],
  ['zlib-stream, fflate', zlibStreamCompression('fflate')],
  ['payload compression', payloadCompression],
];

/** Fails when a message says the same prefix twice in a row, e.g. `decompression failed: decompression failed: `. */
function expectNoRepeatedPrefix(message: string): void {
  const parts = message.split(': ');
  for (let i = 1; i < parts.length; i++) {
    if (parts[i] === parts[i - 1]) throw new Error(`"${parts[i]}" is repeated in: ${message}`);
  }
}

void describe('error messages say each prefix once', () => {
  const f = useGatewayAndShard();

  for (const [name, compression] of factories) {
    void it(`${name}: a message that cannot be decompressed is reported as "decompression failed: <why>"`, async () => {
      const gateway = (f.gateway = await startGateway());
      const shard = (f.shard = createShard(gateway, { compression }));
      const errors: string[] = [];
      shard.error$.subscribe((error) => errors.push(error.message));
      await shard.connect();
      // Not a zlib header; ends with the zlib flush marker, so that zlib-stream engines decompress it at once.
      gateway.connectionOf(0)!.sendBytes(Buffer.concat([Buffer.alloc(60, 0x06), Buffer.from([0x00, 0x00, 0xff, 0xff])]));
      await eventually(() => errors.length > 0, 15_000, 'the decompression error');
      const message = errors[0];
      expect(message).toMatch(/^Shard 0: decompression failed: \S/);
      expect(message.split('decompression failed').length).toBe(2);
      expectNoRepeatedPrefix(message);
      expect(shard.info().lastError).toBe(message.replace(/^Shard 0: /, ''));
    });
  }
});
