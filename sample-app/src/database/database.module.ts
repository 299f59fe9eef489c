import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { APP_FILTER } from '@nestjs/core';
import { TypeOrmModule, TypeOrmModuleOptions, getDataSourceToken } from '@nestjs/typeorm';
import { ClsModule } from 'nestjs-cls';
import { MO_AMQP_OPTIONS } from 'nestjs-mo-amqp';
import type { ResolvedMoAmqpOptions } from 'nestjs-mo-amqp';
import { ORGANISATION_ENTITIES } from '../organisation/organisation.entities';
import { outboxMigration } from './outbox.migration';
import { StillReferredFilter } from './still-referred.filter';

/**
 * PostgreSQL through TypeORM, from DATABASE_URL (required) and DATABASE_SCHEMA
 * (optional, an existing schema; default public), and the transactions of
 * `@Transactional()`: nestjs-cls holds each one for the call, and the outbox
 * (AMQP__OUTBOX=postgres) writes the call's events through it.
 */
function typeOrmOptions(config: ConfigService, amqp: ResolvedMoAmqpOptions): TypeOrmModuleOptions {
  const url = config.get<string>('DATABASE_URL');
  if (!url) {
    throw new Error(
      'DATABASE_URL is not set: the sample app keeps its data in PostgreSQL ' +
        '(postgres://user:password@host:5432/database; `bash scripts/postgresql.sh url` prints the local one)',
    );
  }
  return {
    type: 'postgres',
    url,
    schema: config.get<string>('DATABASE_SCHEMA') || undefined,
    entities: ORGANISATION_ENTITIES,
    // A sample's shortcut: TypeORM creates and alters the tables to match the entities at start-up.
    // A real app turns this off and keeps migrations, as it does here for the outbox table.
    synchronize: true,
    // The outbox table is a migration of the app's own, run at start-up, before the library checks it.
    migrations: amqp.outbox === 'postgres' ? [outboxMigration(amqp.outboxTable)] : [],
    migrationsRun: true,
    retryAttempts: 3,
    retryDelay: 1_000,
  };
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService, MO_AMQP_OPTIONS],
      useFactory: typeOrmOptions,
    }),
    ClsModule.forRoot({
      global: true,
      plugins: [
        new ClsPluginTransactional({
          imports: [TypeOrmModule],
          adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: getDataSourceToken() }),
        }),
      ],
    }),
  ],
  providers: [{ provide: APP_FILTER, useClass: StillReferredFilter }],
})
export class DatabaseModule {}
