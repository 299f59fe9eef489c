import { BROKERS, broker, versionOf } from '../../scripts/brokers';

describe('the tested RabbitMQ versions (scripts/brokers.js)', () => {
  it('are 3.10 (Debian 12 itself), 4.0 (trixie) and 4.3 (sid, every deprecated feature denied)', () => {
    expect(Object.keys(BROKERS)).toEqual(['3.10', '4.0', '4.3']);
    expect(broker('3.10')).toMatchObject({
      chroot: false,
      amqpPort: 5672,
      nodeName: 'rabbit',
      url: 'amqp://localhost:5672',
    });
    expect(broker('4.0')).toMatchObject({ suite: 'trixie', chroot: true, denyDeprecated: false });
    expect(broker('4.3')).toMatchObject({ suite: 'sid', chroot: true, denyDeprecated: true });
  });

  it('give each version ports, an epmd and node names of its own, so all three run side by side', () => {
    const all = Object.keys(BROKERS).map((v) => broker(v));
    const ports = all.flatMap((b) => [
      b.amqpPort,
      b.distPort,
      b.managementPort,
      b.tlsPort,
      b.tlsDistPort,
      b.epmdPort,
      ...[1, 2, 3].flatMap((n) => [b.clusterAmqpPortBase + n, b.clusterDistPortBase + n]),
    ]);
    expect(new Set(ports).size).toBe(ports.length);
    const names = all.flatMap((b) => [b.nodeName, b.tlsNodeName, b.clusterNodePrefix]);
    expect(new Set(names).size).toBe(names.length);
  });

  it('take BROKER unset as 3.10, and refuse a version not tested, naming those that are', () => {
    expect(versionOf(undefined)).toBe('3.10');
    expect(versionOf('')).toBe('3.10');
    expect(() => versionOf('4.4')).toThrow('BROKER="4.4" is not a tested RabbitMQ version: use one of 3.10, 4.0, 4.3');
    expect(() => versionOf('__proto__')).toThrow('is not a tested RabbitMQ version');
  });
});
