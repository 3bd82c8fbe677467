/** The import route, the one route whose bodies may be as large as IMPORT_BODY_LIMIT (app.setup.ts). */
export const IMPORT_PATH = 'chats/import';
