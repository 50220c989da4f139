export * from '../../core/testing/local-gateway-kit';
export * from './gateway-testing.module';
export * from './testing-gateway';
