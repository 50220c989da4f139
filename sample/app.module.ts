import { Module, type DynamicModule } from '@nestjs/common';
import { GatewayModule, type GatewayModuleOptions } from '../lib/nest';
import { BotEventsHandler } from './bot-events.handler';
import { MessageStatsService } from './message-stats.service';
import { ObservabilityModule, type ObservabilityOptions } from './observability.module';

/** The sample bot's root module. With `http`, it also serves GET /health and GET /metrics (see main.ts). */
@Module({})
export class AppModule {
  static register(gateway: GatewayModuleOptions, options: { http?: boolean | ObservabilityOptions } = {}): DynamicModule {
    const http = options.http === true ? {} : options.http || null;
    return {
      module: AppModule,
      imports: [GatewayModule.forRootAsync({ useFactory: () => gateway }), ...(http ? [ObservabilityModule.register(http)] : [])],
      providers: [BotEventsHandler, MessageStatsService],
    };
  }
}
