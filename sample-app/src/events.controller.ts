import { BadRequestException, Body, Controller, Param, Post } from '@nestjs/common';
import { MoEventValidationError, MoEventsService, MoPublishResult } from 'nestjs-mo-amqp';

interface PublishBody {
  uuid: string;
  time?: string;
  objectUuid?: string;
}

/** `POST /events/employee/engagement/create {"uuid": "…"}` publishes one MO event. */
@Controller('events')
export class EventsController {
  constructor(private readonly events: MoEventsService) {}

  @Post(':service/:objectType/:action')
  async publish(
    @Param('service') service: string,
    @Param('objectType') objectType: string,
    @Param('action') action: string,
    @Body() body: PublishBody,
  ): Promise<MoPublishResult> {
    try {
      // The words come from the URL: MoEventsService checks them against the vocabulary.
      return await this.events.publish(service as never, objectType as never, action as never, body?.uuid, {
        time: body?.time,
        objectUuid: body?.objectUuid,
      });
    } catch (err) {
      if (err instanceof MoEventValidationError) throw new BadRequestException(err.message);
      throw err;
    }
  }
}
