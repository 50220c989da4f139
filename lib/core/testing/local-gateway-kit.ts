// The framework-free part of the testing kit: the local gateway and the payload factories. Exported by
// `nestjs-discord-gateway/core` (no Nest needed) and by `nestjs-discord-gateway/testing`.
export * from './local-gateway';
export * from './local-gateway-connection';
export * from './local-gateway-options.interface';
export * from './payload-factories';
export * from './recorded-frame.interface';
export * from './zstd-stream.encoder';
export * from './short-shard-timings.constant';
export * from './virtual-clock';
