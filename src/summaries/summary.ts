import { MessageRole } from '../chats/message';

export type SentimentLabel = 'positive' | 'neutral' | 'negative';

export interface Sentiment {
  score: number;
  label: SentimentLabel;
}

export interface ChatSummary {
  chatId: string;
  title: string | null;
  messageCount: number;
  userMessageCount: number;
  assistantMessageCount: number;
  tokenCount: number;
  firstMessageAt: Date | null;
  lastMessageAt: Date | null;
  highlights: { messageId: string; role: MessageRole; text: string }[];
  topics: { term: string; score: number }[];
  sentiment: Sentiment & { byRole: Record<MessageRole, Sentiment> };
  abstract?: string;
}
