// Health checks for @nestjs/terminus, importable as `nestjs-discord-gateway/health` (needs @nestjs/terminus).
export * from './gateway-health.indicator';
export * from './gateway-health.module';
export * from './stream-delivery-health.indicator';
