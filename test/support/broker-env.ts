// With BROKER set (scripts/brokers.js), what reads AMQP__URL (an app configured from the
// environment, the mo-amqp command a test spawns) talks to that version's node too.
import { broker } from '../../scripts/brokers';

if (process.env.BROKER) process.env.AMQP__URL = broker().url;
