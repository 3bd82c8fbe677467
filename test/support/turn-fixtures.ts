import { ConfigModule } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { ChatKey } from '../../src/chats/chat';
import { ChatRepository } from '../../src/chats/chat.repository';
import { ChatsService } from '../../src/chats/chats.service';
import { CONFIG_SLICES } from '../../src/config/config-slices';
import { Environment } from '../../src/config/env';
import { IdempotencyStore } from '../../src/idempotency/idempotency.store';
import { LlmProvider } from '../../src/llm/llm-provider';
import { MessagesModule } from '../../src/messages/messages.module';
import { MessagesService } from '../../src/messages/messages.service';
import { TurnEvent, TurnRequest } from '../../src/messages/turn';
import { TurnAdmission } from '../../src/messages/turn-admission';
import { Metrics } from '../../src/metrics/metrics';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { StorageModule } from '../../src/storage/storage.module';
import { deferred } from './deferred';
import { echoReply, RecordingLlmProvider } from './recording-llm-provider';

const TENANT = 'tenant-a';

/**
 * A MessagesService with its real collaborators in memory (storage, idempotency, context,
 * digests, titles, admission) and the recording LLM provider, configured from `env` as at
 * start-up: what a turn's unit tests drive.
 */
export async function newTurnService(env: Environment = {}) {
  const llm = new RecordingLlmProvider();
  let builder = Test.createTestingModule({
    imports: [
      ConfigModule.forRoot({ isGlobal: true, load: CONFIG_SLICES }),
      StorageModule,
      MetricsModule,
      MessagesModule,
    ],
  });
  for (const slice of CONFIG_SLICES) builder = builder.overrideProvider(slice.KEY).useValue(slice.parse(env));
  const moduleRef = await builder.overrideProvider(LlmProvider).useValue(llm).compile();
  const service = moduleRef.get(MessagesService);
  const repository = moduleRef.get(ChatRepository);

  /** A new chat of the test tenant; its key. */
  const newChat = async (fields: { title?: string } = {}): Promise<ChatKey> => {
    const chat = await moduleRef.get(ChatsService).create(TENANT, fields);
    return { tenantId: TENANT, chatId: chat.chat.id };
  };

  /** What a client sends: `content` to `chat`, with an Idempotency-Key and a parent when given. */
  const newTurn = (chat: ChatKey, content: string, idempotencyKey?: string, parentId?: string | null): TurnRequest => ({
    kind: 'send',
    chat,
    content,
    idempotencyKey,
    parentId,
  });

  /** A request for a new reply to the message `messageId` of `chat`. */
  const newRegeneration = (chat: ChatKey, messageId: string, idempotencyKey?: string): TurnRequest => ({
    kind: 'regenerate',
    chat,
    messageId,
    idempotencyKey,
  });

  /**
   * Starts the turn and records its events: `done` settles as the turn does, `reached(type)` once
   * an event of that type was reported. `onEvent` sees each event as the service reports it.
   */
  const run = (
    turn: TurnRequest,
    {
      onEvent,
      ...options
    }: { whenClientLeaves?: (stop: () => void) => void; onEvent?: (event: TurnEvent) => void } = {},
  ) => {
    const events: TurnEvent[] = [];
    const waiting = new Map<TurnEvent['type'], () => void>();
    const done = service.runTurn(turn, {
      ...options,
      onEvent: (event) => {
        events.push(event);
        onEvent?.(event);
        waiting.get(event.type)?.();
      },
    });
    const reached = (type: TurnEvent['type']) =>
      events.some((event) => event.type === type)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiting.set(type, resolve));
    return { done, events, reached };
  };

  const messagesOf = async (chat: ChatKey) => repository.listMessages(chat, { limit: 100 });

  /** Replies wait until the returned gate is opened. */
  const holdReplies = () => {
    const gate = deferred();
    llm.respond = async (request) => {
      await gate.promise;
      return echoReply(request);
    };
    return gate;
  };

  return {
    service,
    llm,
    repository,
    idempotencyStore: moduleRef.get(IdempotencyStore),
    admission: moduleRef.get(TurnAdmission),
    metrics: moduleRef.get(Metrics),
    chats: moduleRef.get(ChatsService),
    newChat,
    newTurn,
    newRegeneration,
    run,
    messagesOf,
    holdReplies,
    close: () => moduleRef.close(),
  };
}
