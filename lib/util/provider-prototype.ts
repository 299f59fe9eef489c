import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';

/**
 * The prototype behind a provider or controller, whatever its scope: its
 * instance's, or, where none exists yet (request-scoped, transient, or not made
 * yet), its class's. A factory provider's class cannot be known before it runs:
 * undefined then, and for an alias.
 */
export function providerPrototype(wrapper: InstanceWrapper): object | undefined {
  if (wrapper.isAlias) return undefined;
  const instance: unknown = wrapper.isDependencyTreeStatic() ? wrapper.instance : undefined;
  if (instance && typeof instance === 'object') return Object.getPrototypeOf(instance);
  return !wrapper.inject && typeof wrapper.metatype === 'function' ? wrapper.metatype.prototype : undefined;
}
