import { describe, it } from 'node:test';
import { expect } from 'expect';
import { redisKey, redisKeyPrefix, shardLeaseKey } from '../../lib/redis';

void describe('Redis key layout', () => {
  void it('wraps the prefix in a hash tag, so that every key of a bot hashes to one Redis Cluster slot', () => {
    expect(redisKey('ndg', 'session', 3)).toBe('{ndg}:session:3');
    expect(redisKey('ndg:my-bot', 'members')).toBe('{ndg:my-bot}:members');
    expect(shardLeaseKey('ndg:my-bot', 7)).toBe('{ndg:my-bot}:shard:7:lease');
  });

  void it('keeps a prefix that has a hash tag of its own as it is', () => {
    expect(redisKey('{ndg:my-bot}', 'session', 3)).toBe('{ndg:my-bot}:session:3');
    expect(redisKey('ndg:{my-bot}', 'epoch')).toBe('ndg:{my-bot}:epoch');
  });

  void it('refuses a prefix whose braces would not make one non-empty hash tag', () => {
    for (const keyPrefix of ['bot{', '{}bot', 'a{}b', '']) {
      expect(() => redisKeyPrefix({ keyPrefix })).toThrow(/keyPrefix/);
    }
    expect(redisKeyPrefix({})).toBe('ndg');
    expect(redisKeyPrefix({ keyPrefix: 'a}b' })).toBe('a}b');
  });
});
