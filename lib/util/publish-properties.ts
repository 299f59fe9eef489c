import type { MessageProperties, Options } from 'amqplib';

/** The properties every MO event is published with (the contract's): persistent JSON, its id, now; trace headers. */
export function moEventProperties(messageId: string, headers?: Record<string, string>): Options.Publish {
  const properties: Options.Publish = {
    persistent: true,
    contentType: 'application/json',
    messageId,
    timestamp: Math.floor(Date.now() / 1000),
  };
  // Trace context only: without an OpenTelemetry SDK an event has no headers, as before.
  if (headers) properties.headers = headers;
  return properties;
}

/**
 * The publish options that reproduce a received message's properties. `userId`
 * is left out (the broker refuses a user id other than the connection's own) and
 * so is `expiration` (a copy kept for later must not expire on the way).
 */
export function publishPropertiesOf(properties: MessageProperties, headers = properties.headers): Options.Publish {
  const out: Options.Publish = { headers };
  if (properties.contentType !== undefined) out.contentType = properties.contentType;
  if (properties.contentEncoding !== undefined) out.contentEncoding = properties.contentEncoding;
  if (properties.deliveryMode !== undefined) out.deliveryMode = properties.deliveryMode;
  if (properties.priority !== undefined) out.priority = properties.priority;
  if (properties.correlationId !== undefined) out.correlationId = properties.correlationId;
  if (properties.replyTo !== undefined) out.replyTo = properties.replyTo;
  if (properties.messageId !== undefined) out.messageId = properties.messageId;
  if (properties.timestamp !== undefined) out.timestamp = properties.timestamp;
  if (properties.type !== undefined) out.type = properties.type;
  if (properties.appId !== undefined) out.appId = properties.appId;
  return out;
}
