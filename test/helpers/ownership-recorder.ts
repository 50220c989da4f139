import { Injectable } from '@nestjs/common';
import { ClusterService } from '../../lib/nest';
import type { OwnershipEvent } from '../../lib/core';

/** A provider that records the ownership events of its app from the start. */
@Injectable()
export class OwnershipRecorder {
  readonly events: OwnershipEvent[] = [];

  constructor(clusterService: ClusterService) {
    clusterService.ownership$.subscribe((event) => this.events.push(event));
  }
}
