import { Module, type DynamicModule, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getGatewayToken, resolveGatewayName } from '../constants/gateway-tokens';
import { GatewayModule } from '../gateway.module';
import { TestingGateway, type TestingGatewayOptions } from './testing-gateway';

/** Attaches the module's {@link TestingGateway} to the app once it exists, and closes it after the shards closed. */
class TestingGatewayBinder implements OnModuleInit, OnApplicationShutdown {
  constructor(
    private readonly kit: TestingGateway,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    this.kit.attach(this.moduleRef);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.kit.close();
  }
}

@Module({})
class TestingGatewayHostModule {}

/**
 * `GatewayModule` on a local gateway, for a bot's Nest tests. Global: handlers in any module get `ShardService`,
 * `ClusterService` and `Cluster`. `app.get(TestingGateway)` is the kit; it is attached during `init()` and closed
 * with the app. With `name`, it is that named gateway's module and kit (`app.get(getGatewayToken(TestingGateway,
 * name))`); import one per gateway of the app.
 *
 * ```ts
 * const moduleRef = await Test.createTestingModule({
 *   imports: [GatewayTestingModule.forRoot({ guilds: [GUILD] }), BotFeatureModule],
 * }).compile();
 * const app = await moduleRef.createNestApplication().init();
 * const kit = app.get(TestingGateway);
 * ```
 */
@Module({})
export class GatewayTestingModule {
  static forRoot(options: TestingGatewayOptions = {}): DynamicModule {
    const name = resolveGatewayName(options.name);
    const KIT = getGatewayToken(TestingGateway, name);
    const host: DynamicModule = {
      module: TestingGatewayHostModule,
      providers: [
        { provide: KIT, useFactory: () => TestingGateway.start(options) },
        {
          provide: getGatewayToken(TestingGatewayBinder, name),
          useFactory: (kit: TestingGateway, moduleRef: ModuleRef) => new TestingGatewayBinder(kit, moduleRef),
          inject: [KIT, ModuleRef],
        },
      ],
      exports: [KIT],
    };
    const gateway = GatewayModule.forRootAsync({
      name: options.name,
      imports: [host],
      inject: [KIT],
      useFactory: (kit: TestingGateway) => kit.options,
    });
    return { module: GatewayTestingModule, global: true, imports: [host, gateway], exports: [host, gateway] };
  }
}
