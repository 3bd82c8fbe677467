// Konko Chat playground: plain DOM over the public API. Every text from the service or the user
// is set with textContent, never parsed as HTML.

const KEY_STORAGE = 'konko.playground.apiKey';
const MESSAGE_PAGES = 20; // pages of 1,000 messages read when a chat opens

const $ = (id) => document.getElementById(id);
const ui = {
  provider: $('provider'),
  keyPanel: $('key-panel'),
  keySummary: $('key-summary'),
  keyForm: $('key-form'),
  keyInput: $('api-key'),
  keyNotice: $('key-notice'),
  forgetKey: $('forget-key'),
  newChatForm: $('new-chat-form'),
  systemPrompt: $('system-prompt'),
  chatList: $('chat-list'),
  chatListEmpty: $('chat-list-empty'),
  moreChats: $('more-chats'),
  chatTitle: $('chat-title'),
  chatMeta: $('chat-meta'),
  chatSystem: $('chat-system'),
  notice: $('notice'),
  messages: $('messages'),
  messagesEmpty: $('messages-empty'),
  composer: $('composer'),
  input: $('message-input'),
  send: $('send'),
  stop: $('stop'),
  summaryPanel: $('summary-panel'),
  summaryBody: $('summary-body'),
  refreshSummary: $('refresh-summary'),
  abstractSummary: $('abstract-summary'),
};

const state = {
  /** The open chat, as the API last returned it. */
  chat: null,
  /** The running streamed turn's AbortController. */
  turn: null,
  nextChatsCursor: null,
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || '';
}

function requestHeaders(extra = {}) {
  const headers = { Accept: 'application/json', ...extra };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

async function errorFrom(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // Not a problem document (a proxy's page …): the status says enough.
  }
  if (response.status === 401) askForKey(problem.detail || 'The service needs an API key.');
  return new ApiError(response.status, problem);
}

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(path, {
    method,
    headers: requestHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** Yields `{ event, data }` for each server-sent event of a streamed response; comments are skipped. */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const frames = (buffer += value.replace(/\r\n?/g, '\n')).split('\n\n');
    buffer = frames.pop();
    for (const frame of frames) {
      let event = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')) };
    }
  }
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

function clearNotice() {
  ui.notice.hidden = true;
  ui.notice.textContent = '';
}

function describeError(error) {
  if (error instanceof ApiError) {
    const title = error.problem.title || `HTTP ${error.status}`;
    return error.problem.detail ? `${title}: ${error.problem.detail}` : title;
  }
  return `The service could not be reached (${error.message}).`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const formatTime = (iso) => (iso ? timeFormat.format(new Date(iso)) : '');

// ---------------------------------------------------------------- API key

function renderKeyState() {
  ui.keySummary.textContent = apiKey() ? 'API key: set' : 'API key';
}

function askForKey(reason) {
  ui.keyNotice.textContent = reason;
  ui.keyPanel.open = true;
  ui.keyInput.focus();
}

ui.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  ui.keyInput.value = '';
  ui.keyNotice.textContent = '';
  ui.keyPanel.open = false;
  renderKeyState();
  void reload();
});

ui.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.keyInput.value = '';
  ui.keyNotice.textContent = 'Key forgotten.';
  renderKeyState();
});

// ---------------------------------------------------------------- provider

async function loadProvider() {
  try {
    // Public, like the page: works before a key is entered.
    const response = await fetch('/health/ready', { headers: { Accept: 'application/json' } });
    const health = await response.json();
    const llm = health.details?.llm ?? health.info?.llm;
    const provider = llm?.provider ?? 'unknown';
    ui.provider.textContent =
      provider === 'offline' ? 'Provider: offline (no model configured: replies say so)' : `Provider: ${provider}`;
    ui.provider.dataset.provider = provider;
  } catch {
    ui.provider.textContent = 'Provider: unknown (the service did not answer)';
  }
}

// ---------------------------------------------------------------- chats

function chatLabel(chat) {
  return chat.title || 'Untitled chat';
}

function renderChatItem(chat) {
  const item = el('li');
  const button = el('button', 'chat-item');
  button.type = 'button';
  button.dataset.chatId = chat.id;
  button.append(el('span', 'chat-item__title', chatLabel(chat)));
  const count = chat.messageCount === 1 ? '1 message' : `${chat.messageCount} messages`;
  button.append(el('span', 'chat-item__meta', `${count} · ${formatTime(chat.lastMessageAt || chat.createdAt)}`));
  if (state.chat?.id === chat.id) button.setAttribute('aria-current', 'true');
  button.addEventListener('click', () => void openChat(chat.id));
  item.append(button);
  return item;
}

async function loadChats({ more = false } = {}) {
  const query = more && state.nextChatsCursor ? `&cursor=${encodeURIComponent(state.nextChatsCursor)}` : '';
  const page = await api(`/chats?limit=20${query}`);
  if (!more) ui.chatList.replaceChildren();
  ui.chatList.append(...page.data.map(renderChatItem));
  state.nextChatsCursor = page.nextCursor;
  ui.moreChats.hidden = !page.nextCursor;
  ui.chatListEmpty.hidden = ui.chatList.children.length > 0;
}

function markCurrentChat() {
  for (const button of ui.chatList.querySelectorAll('button[data-chat-id]')) {
    if (button.dataset.chatId === state.chat?.id) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
}

function renderChatHead() {
  const chat = state.chat;
  ui.chatTitle.textContent = chat ? chatLabel(chat) : 'No chat selected';
  ui.chatMeta.textContent = chat ? `Model: ${chat.model} · created ${formatTime(chat.createdAt)}` : '';
  ui.chatSystem.hidden = !chat?.systemPrompt;
  ui.chatSystem.textContent = chat?.systemPrompt ? `System prompt: ${chat.systemPrompt}` : '';
  // No chat open: the composer still works, its first message starts a chat.
  ui.send.disabled = state.turn !== null;
  ui.messagesEmpty.hidden = ui.messages.children.length > 0;
  ui.messagesEmpty.textContent = chat
    ? 'No messages yet: say something.'
    : 'Type a message to start a chat, or pick one from the list.';
}

async function openChat(chatId) {
  // One reply streams at a time: leaving its chat stops it (the service keeps it as incomplete).
  if (state.turn) state.turn.abort();
  clearNotice();
  try {
    await showChat(await api(`/chats/${encodeURIComponent(chatId)}`));
  } catch (error) {
    showNotice(describeError(error));
  }
}

/** Shows a chat's current branch, root first. */
async function showChat(chat) {
  const messages = [];
  let cursor = null;
  for (let page = 0; page < MESSAGE_PAGES; page += 1) {
    const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const result = await api(`/chats/${encodeURIComponent(chat.id)}/messages?limit=1000${query}`);
    messages.push(...result.data);
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  state.chat = chat;
  history.replaceState(null, '', `#${chat.id}`);
  ui.messages.replaceChildren(...messages.map((message) => renderMessage(message)));
  if (cursor) showNotice(`Showing the first ${messages.length} messages of this chat.`);
  renderChatHead();
  markCurrentChat();
  scrollToEnd(true);
  if (ui.summaryPanel.open) void loadSummary();
  else ui.summaryBody.replaceChildren();
}

/** Creates a chat with the system prompt typed in the sidebar (if any) and shows it. */
async function createChat() {
  const systemPrompt = ui.systemPrompt.value.trim();
  const chat = await api('/chats', { method: 'POST', body: systemPrompt ? { systemPrompt } : {} });
  ui.systemPrompt.value = '';
  await loadChats();
  await showChat(chat);
}

ui.newChatForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  // Like opening another chat, starting one stops a reply still streaming.
  if (state.turn) state.turn.abort();
  clearNotice();
  try {
    await createChat();
    ui.input.focus();
  } catch (error) {
    showNotice(describeError(error));
  }
});

ui.moreChats.addEventListener('click', () => void loadChats({ more: true }).catch((e) => showNotice(describeError(e))));

// ---------------------------------------------------------------- messages

function renderMessage(message) {
  const item = el('li', `message message--${message.role}`);
  const meta = el('div', 'message__meta');
  meta.append(el('span', 'message__role', message.role === 'user' ? 'You' : 'Assistant'));
  const content = el('p', 'message__content', message.content);
  item.append(meta, content);
  fillMessage(item, message);
  return item;
}

/** Puts a stored message's content, status and model on its list item. */
function fillMessage(item, message) {
  item.dataset.status = message.status;
  if (message.id) item.dataset.messageId = message.id;
  item.removeAttribute('aria-busy');
  item.querySelector('.message__content').textContent = message.content;
  const meta = item.querySelector('.message__meta');
  meta.querySelectorAll('.message__model, .badge').forEach((node) => node.remove());
  if (message.model) meta.append(el('span', 'message__model', message.model));
  if (message.status === 'incomplete') meta.append(el('span', 'badge badge--incomplete', 'incomplete'));
}

function markStopped(item, label) {
  item.dataset.status = 'incomplete';
  item.removeAttribute('aria-busy');
  const meta = item.querySelector('.message__meta');
  meta.querySelectorAll('.badge').forEach((node) => node.remove());
  meta.append(el('span', 'badge badge--incomplete', label));
}

function scrollToEnd(force = false) {
  const list = ui.messages;
  const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  if (force || nearEnd) list.scrollTop = list.scrollHeight;
  const last = list.lastElementChild;
  if (last && (force || nearEnd)) last.scrollIntoView({ block: 'nearest' });
}

function setTurnRunning(controller) {
  state.turn = controller;
  const running = controller !== null;
  ui.stop.disabled = !running;
  ui.send.disabled = running;
  ui.composer.setAttribute('aria-busy', String(running));
}

/** Sends a message after the current branch; with no chat open, it starts one first. */
async function sendMessage(content) {
  const controller = new AbortController();
  setTurnRunning(controller);
  clearNotice();
  if (!state.chat) {
    try {
      await createChat();
    } catch (error) {
      setTurnRunning(null);
      ui.input.value = ui.input.value || content; // nothing was stored: give the text back
      showNotice(describeError(error));
      return;
    }
  }
  const chatId = state.chat.id;
  const userItem = renderMessage({ role: 'user', content, status: 'completed', model: null });
  userItem.dataset.status = 'sending';
  const replyItem = renderMessage({ role: 'assistant', content: '', status: 'streaming', model: null });
  replyItem.dataset.status = 'streaming';
  replyItem.setAttribute('aria-busy', 'true');
  replyItem.querySelector('.message__meta').append(el('span', 'badge badge--streaming', 'writing…'));
  ui.messages.append(userItem, replyItem);
  ui.messagesEmpty.hidden = true;
  scrollToEnd(true);
  let finished = false;
  try {
    const response = await fetch(`/chats/${encodeURIComponent(chatId)}/messages`, {
      method: 'POST',
      headers: requestHeaders({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
      body: JSON.stringify({ content }),
      signal: controller.signal,
    });
    if (!response.ok) throw await errorFrom(response);
    const text = replyItem.querySelector('.message__content');
    for await (const { event, data } of readEvents(response.body)) {
      if (event === 'user_message') fillMessage(userItem, data);
      else if (event === 'delta') {
        text.textContent += data.content;
        scrollToEnd();
      } else if (event === 'assistant_message') {
        fillMessage(replyItem, data);
        finished = true;
      } else if (event === 'error') {
        if (data.assistantMessage) fillMessage(replyItem, data.assistantMessage);
        else replyItem.remove();
        showNotice(describeError(new ApiError(data.status, data)));
        finished = true;
      }
    }
    if (!finished) markStopped(replyItem, 'incomplete (the stream ended early)');
  } catch (error) {
    if (controller.signal.aborted) {
      // The service stores what was generated so far with status "incomplete".
      markStopped(replyItem, 'incomplete (stopped)');
    } else {
      if (userItem.dataset.status === 'sending') {
        userItem.remove();
        ui.input.value = ui.input.value || content; // nothing was stored: give the text back
      }
      if (!replyItem.querySelector('.message__content').textContent) replyItem.remove();
      else markStopped(replyItem, 'incomplete');
      showNotice(describeError(error));
    }
  } finally {
    setTurnRunning(null);
    if (state.chat?.id === chatId) {
      void refreshChat(chatId);
      ui.input.focus();
    }
  }
}

/** After a turn: the chat's new title and counts, in the head and the list. */
async function refreshChat(chatId) {
  try {
    const chat = await api(`/chats/${encodeURIComponent(chatId)}`);
    if (state.chat?.id !== chatId) return;
    state.chat = chat;
    renderChatHead();
    const button = ui.chatList.querySelector(`button[data-chat-id="${CSS.escape(chatId)}"]`);
    if (button) button.parentElement.replaceWith(renderChatItem(chat));
    else ui.chatList.prepend(renderChatItem(chat));
    ui.chatListEmpty.hidden = true;
    if (ui.summaryPanel.open) void loadSummary();
  } catch {
    // The chat list simply stays as it was.
  }
}

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const content = ui.input.value;
  if (state.turn || content.trim() === '') return;
  ui.input.value = '';
  void sendMessage(content);
});

ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.stop.addEventListener('click', () => state.turn?.abort());
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && state.turn) state.turn.abort();
});

// ---------------------------------------------------------------- summary

function renderSummary(summary) {
  const parts = [];
  parts.push(
    el(
      'p',
      'summary-counts',
      `${summary.messageCount} messages (${summary.userMessageCount} yours, ${summary.assistantMessageCount} replies), ` +
        `${summary.tokenCount} tokens. Sentiment: ${summary.sentiment.label} (${summary.sentiment.score.toFixed(2)}).`,
    ),
  );
  if (summary.abstract) {
    parts.push(el('h3', null, 'Abstract'), el('p', 'summary-abstract', summary.abstract));
  }
  if (summary.topics.length > 0) {
    const topics = el('ul', 'topics');
    topics.append(...summary.topics.map((topic) => el('li', 'topic', topic.term)));
    parts.push(el('h3', null, 'Topics'), topics);
  }
  if (summary.highlights.length > 0) {
    const highlights = el('ul', 'highlights');
    highlights.append(
      ...summary.highlights.map((highlight) => {
        const item = el('li');
        item.append(el('span', 'highlight__role', highlight.role === 'user' ? 'You: ' : 'Assistant: '), highlight.text);
        return item;
      }),
    );
    parts.push(el('h3', null, 'Highlights'), highlights);
  }
  ui.summaryBody.replaceChildren(...parts);
}

async function loadSummary({ abstract = false } = {}) {
  if (!state.chat) {
    ui.summaryBody.replaceChildren(el('p', 'hint', 'Open a chat to see its summary.'));
    return;
  }
  ui.summaryBody.setAttribute('aria-busy', 'true');
  try {
    const query = abstract ? '?abstract=true' : '';
    renderSummary(await api(`/chats/${encodeURIComponent(state.chat.id)}/summary${query}`));
  } catch (error) {
    ui.summaryBody.replaceChildren(el('p', 'error', describeError(error)));
  } finally {
    ui.summaryBody.removeAttribute('aria-busy');
  }
}

ui.summaryPanel.addEventListener('toggle', () => {
  if (ui.summaryPanel.open) void loadSummary();
});
ui.refreshSummary.addEventListener('click', () => void loadSummary());
ui.abstractSummary.addEventListener('click', () => void loadSummary({ abstract: true }));

// ---------------------------------------------------------------- start

async function reload() {
  clearNotice();
  try {
    await loadChats();
    const chatId = decodeURIComponent(location.hash.slice(1));
    if (chatId) await openChat(chatId);
  } catch (error) {
    showNotice(describeError(error));
  }
}

renderKeyState();
renderChatHead();
void loadProvider();
void reload();
