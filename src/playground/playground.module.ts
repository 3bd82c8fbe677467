import { Module } from '@nestjs/common';
import { PlaygroundController } from './playground.controller';

/** The browser playground: a static page over the public API, served at `/`. */
@Module({ controllers: [PlaygroundController] })
export class PlaygroundModule {}
