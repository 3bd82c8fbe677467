// The framework's floor: what the stack the service is built on costs a turn with none of the
// service's own work. A Nest application on Express (JSON body parsing, a global ValidationPipe with
// a class-validator DTO, the answer written on Express's response as the service's turn route
// writes it) whose one route, POST /chats/{id}/messages, asks the upstream (the first argument) for
// a streamed completion of the message alone through the service's own OpenAiLlmProvider from
// dist/ (the `openai` client with the lean body reading), and answers 201 with a user message and a
// reply of the service's shape; with `Accept: text/event-stream` it streams the turn as the service
// does (200: the user message, each delta, the reply, as server-sent events with ids). No storage,
// history, logging, metrics, helmet, auth, idempotency or rate limit.
// Prints `listening <port>` once ready.
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Body, Controller, Module, Param, Post, Req, Res, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IsNotEmpty, IsString, MaxLength } from 'class-validator';
import { OpenAiLlmProvider } from '../../dist/llm/openai-llm.provider.js';

const provider = new OpenAiLlmProvider({ apiKey: 'bench', baseUrl: process.argv[2], timeoutMs: 60_000, maxRetries: 0 });

class SendMessageBody {}
IsString()(SendMessageBody.prototype, 'content');
IsNotEmpty()(SendMessageBody.prototype, 'content');
MaxLength(32_000)(SendMessageBody.prototype, 'content');

function message(chatId, role, content, parentId, usage) {
  return {
    id: randomUUID(),
    chatId,
    seq: role === 'user' ? 1 : 2,
    role,
    content,
    status: 'completed',
    inReplyTo: parentId,
    parentId,
    model: role === 'assistant' ? 'bench-model' : null,
    usage,
    createdAt: new Date().toISOString(),
  };
}

class TurnsController {
  async send(chatId, { content }, request, response) {
    const user = message(chatId, 'user', content, null, null);
    const streamed = request.headers.accept === 'text/event-stream';
    let events = 0;
    const event = (name, data) => response.write(`id: ${++events}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    if (streamed) {
      response.status(200).setHeader('Content-Type', 'text/event-stream; charset=utf-8');
      event('user_message', user);
    }
    let reply = '';
    let usage = null;
    const turn = { model: 'bench-model', messages: [{ role: 'user', content }], maxOutputTokens: 1024 };
    for await (const part of provider.stream(turn)) {
      if (part.type !== 'delta') usage = part.usage;
      else {
        reply += part.content;
        if (streamed) event('delta', { content: part.content });
      }
    }
    const assistantMessage = message(chatId, 'assistant', reply, user.id, usage);
    if (streamed) {
      event('assistant_message', assistantMessage);
      response.end();
    } else response.status(201).json({ userMessage: user, assistantMessage });
  }
}
// Decorators, applied as TypeScript would emit them.
const send = Object.getOwnPropertyDescriptor(TurnsController.prototype, 'send');
Reflect.defineMetadata(
  'design:paramtypes',
  [String, SendMessageBody, Object, Object],
  TurnsController.prototype,
  'send',
);
Param('chatId')(TurnsController.prototype, 'send', 0);
Body()(TurnsController.prototype, 'send', 1);
Req()(TurnsController.prototype, 'send', 2);
Res()(TurnsController.prototype, 'send', 3);
Post(':chatId/messages')(TurnsController.prototype, 'send', send);
Controller('chats')(TurnsController);

class FrameworkModule {}
Module({ controllers: [TurnsController] })(FrameworkModule);

const app = await NestFactory.create(FrameworkModule, { logger: false });
app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }));
const server = app.getHttpServer();
server.keepAliveTimeout = 60_000;
await app.listen(0, '127.0.0.1');
console.log(`listening ${server.address().port}`);
process.on('SIGTERM', () => process.exit(0));
