import { ZLIB_SUFFIX } from '../constants/gateway.constants';

/** True when the buffered WebSocket messages end with the zlib-stream flush marker `00 00 ff ff`. */
export function endsWithZlibSuffix(chunks: readonly Buffer[]): boolean {
  let matched = 0;
  for (let c = chunks.length - 1; c >= 0 && matched < ZLIB_SUFFIX.length; c--) {
    const chunk = chunks[c];
    for (let i = chunk.length - 1; i >= 0 && matched < ZLIB_SUFFIX.length; i--) {
      if (chunk[i] !== ZLIB_SUFFIX[ZLIB_SUFFIX.length - 1 - matched]) return false;
      matched++;
    }
  }
  return matched === ZLIB_SUFFIX.length;
}
