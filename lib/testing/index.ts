export * from './local-gateway';
export * from './local-gateway-connection';
export * from './local-gateway-options.interface';
export * from './payload-factories';
export * from './recorded-frame.interface';
export * from './gateway-testing.module';
export * from './testing-gateway';
export * from './zstd-stream.encoder';
