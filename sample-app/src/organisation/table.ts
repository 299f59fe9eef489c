import { TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityTarget, ObjectLiteral, Repository } from 'typeorm';

/** A row as the API shows it: an optional field that is not set is absent, not null. */
function shown<T>(row: ObjectLiteral): T {
  return Object.fromEntries(Object.entries(row).filter(([, value]) => value !== null && value !== undefined)) as T;
}

/**
 * One entity's table, keyed by UUID, read and written through the transaction
 * `@Transactional()` holds for the current call (a call outside one gets a
 * transaction of its own per statement).
 */
export class Table<T extends { uuid: string }> {
  constructor(
    private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>,
    private readonly entity: EntityTarget<ObjectLiteral>,
    private readonly kind: string,
  ) {}

  private get rows(): Repository<ObjectLiteral> {
    return this.txHost.tx.getRepository(this.entity);
  }

  async insert(fields: Omit<T, 'uuid'>): Promise<T> {
    const row = { ...fields, uuid: randomUUID() };
    await this.rows.insert(row);
    return shown<T>(row);
  }

  /** The row, or 404 naming what was looked for; `forUpdate` locks it until the transaction ends. */
  async get(uuid: string, forUpdate = false): Promise<T> {
    const row = await this.rows.findOne({
      where: { uuid },
      ...(forUpdate && { lock: { mode: 'pessimistic_write' as const } }),
    });
    if (!row) throw new NotFoundException(`${this.kind} ${uuid} not found`);
    return shown<T>(row);
  }

  async update(uuid: string, changes: Partial<Omit<T, 'uuid'>>): Promise<T> {
    const row = await this.get(uuid, true);
    const set = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    if (Object.keys(set).length > 0) await this.rows.update({ uuid }, set);
    return shown<T>({ ...row, ...set });
  }

  async delete(uuid: string): Promise<T> {
    const row = await this.get(uuid, true);
    await this.rows.delete({ uuid });
    return row;
  }
}
