export const CHAT_LIMITS = {
  titleLength: 200,
  systemPromptLength: 8000,
  modelLength: 200,
  metadata: { maxKeys: 16, maxKeyLength: 64, maxValueLength: 512 },
} as const;
