export { MoAmqpTestingModule } from './mo-amqp-testing.module';
export { MoEventsRecorder } from './mo-events-recorder';
export type { RecordedMoChange, RecordedMoEvent } from './mo-events-recorder';
