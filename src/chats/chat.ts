/** A chat session, as the service keeps it. */
export interface Chat {
  readonly id: string;
  readonly title: string | null;
  readonly systemPrompt: string | null;
  readonly model: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly messageCount: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly lastMessageAt: Date | null;
}

export interface NewChat {
  title: string | null;
  systemPrompt: string | null;
  model: string;
  metadata: Record<string, string>;
}

/** Fields a PATCH may change; absent fields stay as they are. */
export interface ChatChanges {
  title?: string | null;
  systemPrompt?: string | null;
  metadata?: Record<string, string>;
}
