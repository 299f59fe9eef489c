import { NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';

/** An in-memory table keyed by UUID: the sample keeps no database. */
export class Repository<T extends { uuid: string }> {
  private readonly rows = new Map<string, T>();

  constructor(private readonly kind: string) {}

  insert(row: Omit<T, 'uuid'>): T {
    const created = { ...row, uuid: randomUUID() } as T;
    this.rows.set(created.uuid, created);
    return created;
  }

  /** The row, or 404 naming what was looked for. */
  get(uuid: string): T {
    const row = this.rows.get(uuid);
    if (!row) throw new NotFoundException(`${this.kind} ${uuid} not found`);
    return row;
  }

  update(uuid: string, changes: Partial<Omit<T, 'uuid'>>): T {
    const updated = { ...this.get(uuid), ...changes };
    this.rows.set(uuid, updated);
    return updated;
  }

  delete(uuid: string): T {
    const row = this.get(uuid);
    this.rows.delete(uuid);
    return row;
  }

  all(): T[] {
    return [...this.rows.values()];
  }
}
