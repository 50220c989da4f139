export * from './local-gateway-kit';
export * from './gateway-testing.module';
export * from './testing-gateway';
export * from './virtual-clock';
