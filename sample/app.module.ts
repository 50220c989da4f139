import { Module, type DynamicModule } from '@nestjs/common';
import { GatewayModule, type GatewayModuleOptions } from '../lib';
import { BotEventsHandler } from './bot-events.handler';
import { MessageStatsService } from './message-stats.service';

/** The sample bot's root module. */
@Module({})
export class AppModule {
  static register(gateway: GatewayModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [GatewayModule.forRootAsync({ useFactory: () => gateway })],
      providers: [BotEventsHandler, MessageStatsService],
    };
  }
}
