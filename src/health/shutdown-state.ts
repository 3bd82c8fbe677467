import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';

/** Whether the application has begun shutting down; readiness turns false from then on. */
@Injectable()
export class ShutdownState implements BeforeApplicationShutdown {
  private shuttingDown = false;

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  begin(): void {
    this.shuttingDown = true;
  }

  beforeApplicationShutdown(): void {
    this.begin();
  }
}
