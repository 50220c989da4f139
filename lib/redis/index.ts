// Entry point of `nestjs-discord-gateway/redis`. Needs the optional peer dependency `ioredis`; the main entry never loads it.
export * from './create-redis-client';
export * from './redis-identify-queue';
export * from './redis-options.interface';
export * from './redis-script';
export * from './redis-session-store';
export * from './redis-command-bus';
export * from './redis-dispatch-deduplicator';
export * from './redis-gateway-scale-out';
export * from './shard-ownership';
