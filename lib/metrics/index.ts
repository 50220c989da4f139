// Prometheus metrics with prom-client, importable as `nestjs-discord-gateway/metrics` (needs prom-client).
export * from './gateway-metrics';
export * from './gateway-metrics.module';
export * from './stream-delivery-metrics';
