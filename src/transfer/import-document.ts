import { isUUID } from 'class-validator';
import { CHAT_LIMITS } from '../chats/dto/chat-limits';
import { CreateChatDto } from '../chats/dto/create-chat.dto';
import { MessageRole, MessageStatus, TokenUsage } from '../chats/message';
import { RequestValidationError } from '../common/errors/domain-error';
import { hasAtMostCharacters } from '../common/validation/max-characters.decorator';
import { readBody } from '../common/validation/request-validation.pipe';
import { MAX_MESSAGE_LENGTH } from '../messages/dto/send-message.dto';
import { MAX_REPLY_LENGTH } from '../messages/storable-reply';
import { EXPORT_FORMAT } from './export-document';

export const MAX_IMPORTED_MESSAGES = 10_000;

/** A message of an import document, checked; it names its parent and the message it answers by index. */
export interface DocumentMessage {
  role: MessageRole;
  content: string;
  status: MessageStatus;
  parent: number | null;
  inReplyTo: number | null;
  model: string | null;
  usage: TokenUsage | null;
  /** null: a plain list of messages has no times. */
  createdAt: Date | null;
}

/** The chat an import body describes, checked. */
export interface ImportDocument {
  title: string | null;
  systemPrompt: string | null;
  /** null: the service's default model. */
  model: string | null;
  metadata: Record<string, string>;
  /** null: a plain list of messages has no times. */
  createdAt: Date | null;
  /** Each after its parent and the message it answers. */
  messages: DocumentMessage[];
  /** The last message of the current branch, one with no children; null when there are no messages. */
  current: number | null;
}

type JsonObject = Record<string, unknown>;

const EXPORTED_CHAT_FIELDS = [
  'id',
  'title',
  'systemPrompt',
  'model',
  'metadata',
  'messageCount',
  'createdAt',
  'updatedAt',
  'lastMessageAt',
  'currentMessageId',
];
const EXPORTED_MESSAGE_FIELDS = [
  'id',
  'chatId',
  'seq',
  'role',
  'content',
  'status',
  'inReplyTo',
  'parentId',
  'model',
  'usage',
  'createdAt',
];
/** ISO 8601 with a four-digit year: what every storage keeps (PostgreSQL's timestamptz among them). */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Reads an import body: an export document (it has `format`) or a plain list of messages in the
 * OpenAI Chat shape. A bad one is a 422 naming its first bad field, found before anything is stored.
 */
export async function parseImportDocument(body: JsonObject): Promise<ImportDocument> {
  return 'format' in body ? parseExportDocument(body) : parseMessageList(body);
}

async function parseExportDocument(body: JsonObject): Promise<ImportDocument> {
  onlyFields(body, ['format', 'chat', 'messages'], '');
  if (body.format !== EXPORT_FORMAT) throw invalid('format', `format must be ${EXPORT_FORMAT}`);
  const chat = objectAt(body.chat, 'chat');
  onlyFields(chat, EXPORTED_CHAT_FIELDS, 'chat');
  const { title, systemPrompt, model, metadata } = chat;
  const fields = await chatFields({ title, systemPrompt, model, metadata }, 'chat');
  const createdAt = timeAt(chat.createdAt, 'chat.createdAt');

  const indexOf = new Map<string, number>();
  const roles: MessageRole[] = [];
  /** The earlier message `id` names, one of `role` when given. */
  const earlier = (id: unknown, field: string, role?: MessageRole): number | null => {
    if (id === undefined || id === null) return null;
    const index = typeof id === 'string' ? indexOf.get(id) : undefined;
    if (index === undefined || (role !== undefined && roles[index] !== role)) {
      throw invalid(field, `${nameOf(field)} must be null or the id of an earlier ${role ? `${role} ` : ''}message`);
    }
    return index;
  };
  const messages = messageList(body.messages).map((value, i): DocumentMessage => {
    const at = `messages[${i}]`;
    const item = objectAt(value, at);
    onlyFields(item, EXPORTED_MESSAGE_FIELDS, at);
    if (typeof item.id !== 'string' || !isUUID(item.id)) throw invalid(`${at}.id`, 'id must be a UUID');
    if (indexOf.has(item.id)) throw invalid(`${at}.id`, 'id must not be the id of an earlier message');
    const role = oneOf(item.role, ['user', 'assistant'] as const, `${at}.role`);
    // Only a reply is ever cut short.
    const statuses = role === 'user' ? (['completed'] as const) : (['completed', 'incomplete'] as const);
    const status = oneOf<MessageStatus>(item.status, statuses, `${at}.status`);
    const content = contentAt(item.content, `${at}.content`, role);
    const message = {
      role,
      content,
      status,
      parent: earlier(item.parentId, `${at}.parentId`),
      // What the service stores: a reply names the user message it answers, which a regeneration answers again.
      inReplyTo: earlier(item.inReplyTo, `${at}.inReplyTo`, 'user'),
      model: modelAt(item.model, `${at}.model`),
      usage: usageAt(item.usage, `${at}.usage`),
      createdAt: timeAt(item.createdAt, `${at}.createdAt`),
    };
    indexOf.set(item.id, i);
    roles.push(role);
    return message;
  });

  let current = messages.length > 0 ? messages.length - 1 : null;
  if (chat.currentMessageId !== undefined && chat.currentMessageId !== null) {
    const named = typeof chat.currentMessageId === 'string' ? indexOf.get(chat.currentMessageId) : undefined;
    if (named === undefined) {
      throw invalid('chat.currentMessageId', 'currentMessageId must be null or the id of a message of the document');
    }
    current = newestDescendant(messages, named);
  }
  return { ...fields, createdAt, messages, current };
}

async function parseMessageList(body: JsonObject): Promise<ImportDocument> {
  const { messages: value, ...rest } = body;
  const list = messageList(value);
  const first = list[0];
  const system = isObject(first) && first.role === 'system' ? first : undefined;
  if (system) {
    if (rest.systemPrompt !== undefined) {
      throw invalid('systemPrompt', 'systemPrompt cannot come with a leading system message');
    }
    onlyFields(system, ['role', 'content'], 'messages[0]');
    textAt(system.content, 'messages[0].content');
  }
  // A leading system message is the system prompt, by the system prompt's rules.
  const fields = await (system
    ? chatFields({ ...rest, systemPrompt: system.content }, '', { systemPrompt: 'messages[0].content' })
    : chatFields(rest, ''));

  const messages: DocumentMessage[] = [];
  for (let i = system ? 1 : 0; i < list.length; i++) {
    const at = `messages[${i}]`;
    const item = objectAt(list[i], at);
    onlyFields(item, ['role', 'content'], at);
    const role = oneOf(item.role, ['system', 'user', 'assistant'] as const, `${at}.role`);
    if (role === 'system') throw invalid(`${at}.role`, 'only the first message may be a system message');
    const previous = messages.length > 0 ? messages.length - 1 : null;
    messages.push({
      role,
      content: contentAt(item.content, `${at}.content`, role),
      status: 'completed',
      parent: previous,
      // As a turn stores it: a reply answers the user message before it.
      inReplyTo: role === 'assistant' && previous !== null && messages[previous].role === 'user' ? previous : null,
      model: null,
      usage: null,
      createdAt: null,
    });
  }
  return { ...fields, createdAt: null, messages, current: messages.length > 0 ? messages.length - 1 : null };
}

/** The chat's own fields, read as creating a chat reads them; `renamed` names a field where the body has it elsewhere. */
async function chatFields(fields: JsonObject, at: string, renamed: Record<string, string> = {}) {
  const chat = await readBody(CreateChatDto, fields).catch((error: unknown) => {
    if (!(error instanceof RequestValidationError)) throw error;
    const [{ field, message }] = error.errors;
    throw invalid(renamed[field] ?? join(at, field), message);
  });
  return {
    title: chat.title ?? null,
    systemPrompt: chat.systemPrompt ?? null,
    model: chat.model ?? null,
    metadata: chat.metadata ?? {},
  };
}

/**
 * The newest message below `index`, or that message itself: the current branch a chat switched
 * to it would show. Parents come before their children, so one pass finds it.
 */
function newestDescendant(messages: readonly DocumentMessage[], index: number): number {
  const below = new Set([index]);
  let newest = index;
  for (let i = index + 1; i < messages.length; i++) {
    const { parent } = messages[i];
    if (parent !== null && below.has(parent)) {
      below.add(i);
      newest = i;
    }
  }
  return newest;
}

const invalid = (field: string, message: string) => new RequestValidationError([{ field, message }]);
const join = (at: string, key: string) => (at ? `${at}.${key}` : key);
const nameOf = (field: string) => field.slice(field.lastIndexOf('.') + 1);
const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function objectAt(value: unknown, field: string): JsonObject {
  if (!isObject(value)) throw invalid(field, `${nameOf(field)} must be an object`);
  return value;
}

function onlyFields(object: JsonObject, allowed: readonly string[], at: string): void {
  const unknown = Object.keys(object).find((key) => !allowed.includes(key));
  if (unknown !== undefined) throw invalid(join(at, unknown), `property ${unknown} should not exist`);
}

function messageList(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw invalid('messages', 'messages must be an array');
  if (value.length > MAX_IMPORTED_MESSAGES) {
    throw invalid('messages', `messages must contain no more than ${MAX_IMPORTED_MESSAGES} elements`);
  }
  return value;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], field: string): T {
  if (!allowed.includes(value as T)) {
    throw invalid(field, `${nameOf(field)} must be one of the following values: ${allowed.join(', ')}`);
  }
  return value as T;
}

/** A field that must be a string, refused as a send refuses one: missing, else not a string. */
function textAt(value: unknown, field: string): asserts value is string {
  if (value === undefined) throw invalid(field, `${nameOf(field)} is required`);
  if (typeof value !== 'string') throw invalid(field, `${nameOf(field)} must be a string`);
}

/**
 * A user message as a send takes it: 1–32,000 characters, not blank. A reply as the service stores
 * one: at most MAX_REPLY_LENGTH characters, and empty or blank whatever its status (stopped before
 * its first token, or left empty by the model: a reasoning model that spent its tokens thinking).
 */
function contentAt(value: unknown, field: string, role: MessageRole): string {
  textAt(value, field);
  const max = role === 'assistant' ? MAX_REPLY_LENGTH : MAX_MESSAGE_LENGTH;
  if (!hasAtMostCharacters(value, max)) {
    throw invalid(field, `content must be shorter than or equal to ${max} characters`);
  }
  if (role === 'user' && value.trim().length === 0) throw invalid(field, 'content must not be blank');
  return value;
}

function modelAt(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !hasAtMostCharacters(value, CHAT_LIMITS.modelLength)) {
    throw invalid(field, `model must be null or a string of at most ${CHAT_LIMITS.modelLength} characters`);
  }
  return value;
}

function usageAt(value: unknown, field: string): TokenUsage | null {
  if (value === undefined || value === null) return null;
  const usage = objectAt(value, field);
  onlyFields(usage, ['promptTokens', 'completionTokens'], field);
  const count = (key: 'promptTokens' | 'completionTokens') => {
    const tokens = usage[key];
    if (!Number.isSafeInteger(tokens) || (tokens as number) < 0) {
      throw invalid(`${field}.${key}`, `${key} must be a whole number of at least 0`);
    }
    return tokens as number;
  };
  return { promptTokens: count('promptTokens'), completionTokens: count('completionTokens') };
}

/**
 * Whether the date and hour a date-time names exist, as RFC 3339 (JSON Schema's `date-time`) has
 * them: `new Date` reads February 30 as March 2 and 24:00 as the next day's midnight.
 */
function isCalendarTime(value: string): boolean {
  const [year, month, day, hour] = value
    .match(/^(\d{4})-(\d{2})-(\d{2})T(\d{2})/)!
    .slice(1)
    .map(Number);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  return month >= 1 && month <= 12 && day >= 1 && day <= days && hour <= 23;
}

function timeAt(value: unknown, field: string): Date {
  const time =
    typeof value === 'string' && ISO_DATE_TIME.test(value) && isCalendarTime(value) ? new Date(value) : undefined;
  const year = time?.getUTCFullYear() ?? Number.NaN;
  if (!(year >= 1 && year <= 9999)) {
    throw invalid(field, `${nameOf(field)} must be an ISO 8601 date-time such as 2026-11-25T09:31:12.000Z`);
  }
  return time!;
}
