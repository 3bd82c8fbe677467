// Konko Chat playground: plain DOM over the public API. Every text from the service or the user
// is set with textContent, never parsed as HTML, but for replies: their Markdown is rendered, and
// sanitized (see renderMarkdown).

import { Marked } from './marked.esm.js';
import DOMPurify from './purify.es.mjs';

const KEY_STORAGE = 'konko.playground.apiKey';
const OPEN_STORAGE = 'konko.playground.open'; // the open chat, and how far its reply in progress was read
const MESSAGE_PAGES = 20; // pages of 1,000 messages read when a chat opens
const RESUME_TRIES = 4; // resumes of a reply whose connection drops, 0, 1, 2 and 3 s apart

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
  importChat: $('import-chat'),
  importFile: $('import-file'),
  searchForm: $('search-form'),
  searchInput: $('search-input'),
  searchResults: $('search-results'),
  searchStatus: $('search-status'),
  searchHits: $('search-hits'),
  moreHits: $('more-hits'),
  clearSearch: $('clear-search'),
  chatList: $('chat-list'),
  chatListEmpty: $('chat-list-empty'),
  moreChats: $('more-chats'),
  chatTitle: $('chat-title'),
  renameForm: $('rename-form'),
  renameInput: $('rename-input'),
  renameCancel: $('rename-cancel'),
  chatActions: $('chat-actions'),
  renameChat: $('rename-chat'),
  deleteChat: $('delete-chat'),
  deleteConfirm: $('delete-confirm'),
  deleteQuestion: $('delete-question'),
  deleteYes: $('delete-yes'),
  deleteNo: $('delete-no'),
  exportGroup: $('export'),
  exportJson: $('export-json'),
  exportMarkdown: $('export-markdown'),
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
  /** The reply the page is reading (newTurn()), or null. */
  turn: null,
  nextChatsCursor: null,
  /** Message ids by parentId ('' for roots), each group by seq: the versions "‹ n / m ›" flips through. */
  siblings: new Map(),
  /** The results shown: their words, the cursor of the next page, and the number of the search asked last. */
  search: { q: '', nextCursor: null, asked: 0 },
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  /** `retryAfter`: the seconds of the response's Retry-After, or null. */
  constructor(status, problem, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** The chat asked about is not there: deleted, by another client perhaps. Every route on a chat says so. */
const isChatGone = (error) =>
  error instanceof ApiError && error.status === 404 && error.problem.type === 'urn:konko:problem:chat-not-found';

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
  // The service sends whole seconds; the HTTP-date form is left out rather than misread.
  const retryAfter = response.headers.get('Retry-After');
  return new ApiError(response.status, problem, /^\d+$/.test(retryAfter ?? '') ? Number(retryAfter) : null);
}

/** `body` goes as JSON; `json` is JSON text sent as it is (a file's: the service says what is wrong with it). */
async function api(path, { method = 'GET', body, json = body === undefined ? undefined : JSON.stringify(body) } = {}) {
  const response = await fetch(path, {
    method,
    headers: requestHeaders(json === undefined ? {} : { 'Content-Type': 'application/json' }),
    body: json,
  });
  if (!response.ok) throw await errorFrom(response);
  const text = await response.text(); // empty for 202 and 204
  return text ? JSON.parse(text) : null;
}

/** Yields `{ event, data, id }` for each server-sent event of a streamed response; comments are skipped. */
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
      let id = null;
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('id:')) id = line.slice(3).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')), id };
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

/** Escape in `element` does `action` alone: the page's own Escape (Stop) is not reached. */
function onEscape(element, action) {
  element.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    event.preventDefault();
    event.stopPropagation();
    action();
  });
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
    const text = error.problem.detail ? `${title}: ${error.problem.detail}` : title;
    // The detail of a 429 says to wait for Retry-After, which the reader cannot see.
    if (error.retryAfter === null) return text;
    const when = error.retryAfter > 0 ? `in ${error.retryAfter} s` : 'now';
    return `${text}${/[.!?]$/.test(text) ? '' : '.'} Try again ${when}.`;
  }
  return `The service could not be reached (${error.message}).`;
}

// ---------------------------------------------------------------- Markdown

const escapeHtml = (text) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/**
 * GitHub-flavoured, a line break where the model broke the line (as the plain text showed it).
 * HTML the model writes shows as the text it is, as chat UIs show it; an image, as a link to it:
 * the page loads nothing a reply names (the CSP would refuse most anyway).
 */
const markdown = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html: ({ text, block }) => (block ? `<p>${escapeHtml(text)}</p>` : escapeHtml(text)),
    image: ({ href, text }) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
  },
});

// Links leave the page for a tab of their own, which gets no hold on this one.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName !== 'A' || !node.hasAttribute('href')) return;
  node.setAttribute('target', '_blank');
  node.setAttribute('rel', 'noopener noreferrer');
});

/**
 * A reply's Markdown as DOM nodes. DOMPurify takes out whatever could run or load (javascript:
 * links, event handlers) should the renderer ever let some through. Trimmed: no whitespace around
 * the blocks, so a one-line reply's text is that line alone.
 */
function renderMarkdown(text) {
  const html = markdown.parse(text).trim();
  const nodes = DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, RETURN_DOM_FRAGMENT: true });
  // A table scrolls in a box of its own: made scrollable itself, it would lose its table semantics.
  for (const table of nodes.querySelectorAll('table')) {
    const box = el('div', 'table-scroll');
    table.replaceWith(box);
    box.append(table);
  }
  return nodes;
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

/** The chat's item in the list, or null. */
function chatListItem(chatId) {
  return ui.chatList.querySelector(`button[data-chat-id="${CSS.escape(chatId)}"]`)?.parentElement ?? null;
}

async function loadChats({ more = false } = {}) {
  const query = more && state.nextChatsCursor ? `&cursor=${encodeURIComponent(state.nextChatsCursor)}` : '';
  const page = await api(`/chats?limit=20${query}`);
  if (!more) ui.chatList.replaceChildren();
  // A chat listed ahead of its page (opened from the address, then answered: see refreshChat) moves to its place.
  for (const chat of page.data) chatListItem(chat.id)?.remove();
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
  ui.exportGroup.hidden = !chat;
  ui.chatActions.hidden = !chat || !ui.renameForm.hidden;
  // No chat open: the composer still works, its first message starts a chat.
  ui.send.disabled = state.turn !== null;
  ui.messagesEmpty.hidden = ui.messages.children.length > 0;
  ui.messagesEmpty.textContent = chat
    ? 'No messages yet: say something.'
    : 'Type a message to start a chat, or pick one from the list.';
}

/** Every message of a list (`''`: the current branch, `'&branch=all'`: every branch), page by page. */
async function readMessages(chatId, query) {
  const messages = [];
  let cursor = null;
  for (let page = 0; page < MESSAGE_PAGES; page += 1) {
    const after = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const result = await api(`/chats/${encodeURIComponent(chatId)}/messages?limit=1000${query}${after}`);
    messages.push(...result.data);
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  return { messages, complete: !cursor };
}

/** Messages that share a parent are versions of one another; `?branch=all` lists by seq, so each group is too. */
function groupSiblings(allMessages) {
  const groups = new Map();
  for (const message of allMessages) {
    const key = message.parentId ?? '';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(message.id);
  }
  return groups;
}

/** Chats asked to show so far: a chat picked while another still loads wins, whichever answers last. */
let chatsAsked = 0;

/** The messages from the root to `lastId`, root first; none when `lastId` is not among them. */
function branchOf(allMessages, lastId) {
  const byId = new Map(allMessages.map((message) => [message.id, message]));
  const branch = [];
  for (let message = byId.get(lastId); message; message = byId.get(message.parentId)) branch.unshift(message);
  return branch;
}

/**
 * Shows a chat, and follows the reply the service is writing in it, if any (see attach). With
 * `at` (a search hit), the branch shown holds that message, and the page scrolls to it.
 */
async function openChat(chatId, { at = null } = {}) {
  const left = state.turn?.chatId ?? null;
  leaveTurn();
  clearNotice();
  const asked = (chatsAsked += 1);
  const saved = rememberedReply(chatId);
  try {
    let chat = await api(`/chats/${encodeURIComponent(chatId)}`);
    if (asked !== chatsAsked) return;
    let branch = at ? await readMessages(chatId, '') : undefined;
    if (asked !== chatsAsked) return;
    // The page shows the current branch only, so a hit elsewhere makes its branch current, as
    // flipping versions does: what the user sends next then follows the messages they looked at.
    if (branch && !branch.messages.some((message) => message.id === at)) {
      chat = await api(`/chats/${encodeURIComponent(chatId)}`, { method: 'PATCH', body: { currentMessageId: at } });
      branch = undefined;
    }
    if (!(await showChat(chat, branch, asked))) return;
  } catch (error) {
    if (asked !== chatsAsked) return;
    // The chat whose reply the page let go still shows: it follows that reply on.
    if (left && left !== chatId && state.chat?.id === left) await openChat(left);
    showChatError(error, chatId);
    return;
  }
  if (at) showMessage(at);
  void attach(chatId, saved);
}

/**
 * Shows a chat's current branch (`branchRead`: read already), root first; every message with
 * versions gets "‹ n / m ›". `asked`: the chatsAsked number the caller took when it began. False
 * when a chat was asked for after this one, and shows instead.
 */
async function showChat(chat, branchRead, asked) {
  const [branch, all] = await Promise.all([
    branchRead ?? readMessages(chat.id, ''),
    readMessages(chat.id, '&branch=all'),
  ]);
  if (asked !== chatsAsked) return false;
  if (state.chat?.id !== chat.id) {
    closeRename();
    closeDeleteConfirm();
  }
  state.chat = chat;
  state.siblings = groupSiblings(all.messages);
  history.replaceState(null, '', `#${chat.id}`);
  remember(chat.id);
  ui.messages.replaceChildren(...branch.messages.map((message) => renderMessage(message)));
  if (!branch.complete) showNotice(`Showing the first ${branch.messages.length} messages of this chat.`);
  renderChatHead();
  markCurrentChat();
  scrollToEnd(true);
  if (ui.summaryPanel.open) void loadSummary();
  else clearSummary();
  return true;
}

/** Creates a chat with the system prompt typed in the sidebar (if any) and shows it. */
async function createChat() {
  const asked = (chatsAsked += 1);
  const systemPrompt = ui.systemPrompt.value.trim();
  const chat = await api('/chats', { method: 'POST', body: systemPrompt ? { systemPrompt } : {} });
  ui.systemPrompt.value = '';
  await loadChats();
  await showChat(chat, undefined, asked);
}

ui.newChatForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  leaveTurn(); // as opening another chat does
  clearNotice();
  try {
    await createChat();
    ui.input.focus();
  } catch (error) {
    showNotice(describeError(error));
  }
});

ui.moreChats.addEventListener('click', () => void loadChats({ more: true }).catch((e) => showNotice(describeError(e))));

// ---------------------------------------------------------------- rename

/** A field in the title's place: Enter saves what it holds, Escape leaves the title as it was. */
function startRename() {
  if (!state.chat) return;
  ui.renameInput.value = state.chat.title ?? '';
  ui.chatTitle.hidden = true;
  ui.renameForm.hidden = false;
  renderChatHead();
  ui.renameInput.focus();
  ui.renameInput.select();
}

function closeRename() {
  ui.renameForm.hidden = true;
  ui.chatTitle.hidden = false;
  renderChatHead();
}

/** The service says what is wrong with a title (blank, too long); the field stays open to fix it. */
async function renameChat(chatId, title) {
  clearNotice();
  try {
    const chat = await api(`/chats/${encodeURIComponent(chatId)}`, { method: 'PATCH', body: { title } });
    chatListItem(chatId)?.replaceWith(renderChatItem(chat));
    if (state.chat?.id !== chatId) return;
    state.chat = chat;
    closeRename();
    ui.renameChat.focus();
  } catch (error) {
    showChatError(error, chatId);
  }
}

ui.renameChat.addEventListener('click', startRename);
ui.renameCancel.addEventListener('click', () => {
  closeRename();
  ui.renameChat.focus();
});
onEscape(ui.renameInput, () => ui.renameCancel.click()); // leaves the title as it was
ui.renameForm.addEventListener('submit', (event) => {
  event.preventDefault();
  if (state.chat) void renameChat(state.chat.id, ui.renameInput.value.trim());
});

// ---------------------------------------------------------------- delete

/** Asks first, in the head: nothing brings a deleted chat back. */
function askDelete() {
  if (!state.chat) return;
  ui.deleteQuestion.textContent = `Delete “${chatLabel(state.chat)}” and all its messages? This cannot be undone.`;
  ui.deleteConfirm.hidden = false;
  ui.deleteNo.focus();
}

function closeDeleteConfirm() {
  ui.deleteConfirm.hidden = true;
  ui.deleteQuestion.textContent = '';
}

/**
 * The service stops a reply still being written in the chat; the page stops reading it first, so
 * that its end reads as leaving the chat, not as a failure. Refused, the chat shows again, and
 * its reply is followed on from where the page left it.
 */
async function deleteChat(chatId) {
  closeDeleteConfirm();
  clearNotice();
  const following = state.turn?.chatId === chatId;
  if (following) leaveTurn();
  deletedHere.add(chatId);
  try {
    await api(`/chats/${encodeURIComponent(chatId)}`, { method: 'DELETE' });
  } catch (error) {
    if (!isChatGone(error)) {
      deletedHere.delete(chatId);
      if (following && state.chat?.id === chatId) await openChat(chatId);
      showNotice(describeError(error));
      return;
    } // else deleted elsewhere meanwhile: gone all the same
  }
  const wasOpen = state.chat?.id === chatId;
  dropChat(chatId);
  if (wasOpen) ui.input.focus();
}

/** The chat the address names (`#<chatId>`); empty when it names none, or nothing readable. */
function addressedChatId() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return ''; // a malformed escape: no chat's id has one
  }
}

/** Takes a chat that is no more off the list; when it is the open one, the page shows no chat. */
function dropChat(chatId) {
  chatListItem(chatId)?.remove();
  ui.chatListEmpty.hidden = ui.chatList.children.length > 0;
  if (remembered().chatId === chatId) sessionStorage.removeItem(OPEN_STORAGE);
  if (addressedChatId() === chatId) history.replaceState(null, '', location.pathname + location.search);
  if (state.chat?.id !== chatId) return;
  // A message being sent goes with the chat: its text is not lost, as a refused one's is not.
  const typed = state.turn?.typed;
  leaveTurn();
  if (typed && !ui.input.value) ui.input.value = typed;
  state.chat = null;
  state.siblings = new Map();
  ui.messages.replaceChildren();
  closeRename();
  closeDeleteConfirm();
  renderChatHead();
  clearSummary();
  if (ui.summaryPanel.open) void loadSummary();
}

/**
 * Chats this tab deletes or has deleted: a 404 for one of them (a refresh, a reply's resume still
 * on its way) is this tab's own doing, and deleteChat takes the chat off the page.
 */
const deletedHere = new Set();

/**
 * Shows what went wrong with a call on chat `chatId`. When the chat is gone (deleted by another
 * client, another tab; or, the 404 being the same, one of another tenant's after the API key
 * changed), it leaves the list and, were it open, the page, rather than staying shown as though
 * it were still there.
 */
function showChatError(error, chatId) {
  if (!isChatGone(error)) {
    showNotice(describeError(error));
    return;
  }
  if (deletedHere.has(chatId)) return;
  const label =
    state.chat?.id === chatId
      ? chatLabel(state.chat)
      : chatListItem(chatId)?.querySelector('.chat-item__title')?.textContent;
  dropChat(chatId);
  const why = apiKey() ? 'deleted elsewhere, or not one of this API key’s chats' : 'deleted elsewhere';
  showNotice(label ? `The chat “${label}” is gone: ${why}.` : `That chat is gone: ${why}.`);
}

ui.deleteChat.addEventListener('click', askDelete);
ui.deleteYes.addEventListener('click', () => {
  if (state.chat) void deleteChat(state.chat.id);
});
ui.deleteNo.addEventListener('click', () => {
  closeDeleteConfirm();
  ui.deleteChat.focus();
});
onEscape(ui.deleteConfirm, () => ui.deleteNo.click()); // keeps the chat

// ---------------------------------------------------------------- messages

function renderMessage(message) {
  const isUser = message.role === 'user';
  const item = el('li', `message message--${message.role}`);
  item.dataset.role = message.role;
  const meta = el('div', 'message__meta');
  meta.append(el('span', 'message__role', isUser ? 'You' : 'Assistant'));
  item.append(meta, el(isUser ? 'p' : 'div', 'message__content'), el('div', 'message__actions'));
  fillMessage(item, message);
  return item;
}

/** Each message item's text as written (a reply's Markdown): what the page reads back, not the DOM's text. */
const written = new WeakMap();
/** Reply items with text not drawn yet: the animation frame that draws it. */
const drawing = new WeakMap();

const contentOf = (item) => written.get(item) ?? '';

/** Your messages show as typed; replies, rendered. */
function drawContent(item) {
  const node = item.querySelector('.message__content');
  if (item.dataset.role === 'user') node.textContent = contentOf(item);
  else node.replaceChildren(renderMarkdown(contentOf(item)));
}

function setContent(item, content) {
  cancelAnimationFrame(drawing.get(item));
  drawing.delete(item);
  written.set(item, content);
  drawContent(item);
}

/** A streamed delta: each render parses the whole reply, so it is drawn once a frame, however many came. */
function appendContent(item, delta) {
  written.set(item, contentOf(item) + delta);
  if (drawing.has(item)) return;
  drawing.set(
    item,
    requestAnimationFrame(() => {
      drawing.delete(item);
      drawContent(item);
      scrollToEnd();
    }),
  );
}

/** Puts a stored message's content, status, model and actions on its list item. */
function fillMessage(item, message) {
  item.dataset.status = message.status;
  item.removeAttribute('aria-busy');
  setContent(item, message.content);
  const meta = item.querySelector('.message__meta');
  meta.querySelectorAll('.message__model, .badge').forEach((node) => node.remove());
  if (message.model) meta.append(el('span', 'message__model', message.model));
  if (message.status === 'incomplete') meta.append(el('span', 'badge badge--incomplete', 'incomplete'));
  // Only a stored message (one with an id) can be edited, answered again or flipped.
  if (message.id) {
    item.dataset.messageId = message.id;
    item.dataset.parentKey = message.parentId ?? '';
    item.dataset.inReplyTo = message.inReplyTo ?? '';
    renderActions(item);
  }
}

function markStopped(item, label) {
  item.dataset.status = 'incomplete';
  item.removeAttribute('aria-busy');
  const meta = item.querySelector('.message__meta');
  meta.querySelectorAll('.badge').forEach((node) => node.remove());
  meta.append(el('span', 'badge badge--incomplete', label));
}

/** Marks a message and scrolls to it, with the keyboard on it (its actions are a Tab away). */
function showMessage(messageId) {
  const item = [...ui.messages.children].find((node) => node.dataset.messageId === messageId);
  if (!item) return;
  item.classList.add('message--hit');
  item.tabIndex = -1;
  item.scrollIntoView({ block: 'center' });
  item.focus({ preventScroll: true });
}

function scrollToEnd(force = false) {
  const list = ui.messages;
  const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  if (force || nearEnd) list.scrollTop = list.scrollHeight;
  const last = list.lastElementChild;
  if (last && (force || nearEnd)) last.scrollIntoView({ block: 'nearest' });
}

function setTurnRunning(turn) {
  state.turn = turn;
  const running = turn !== null;
  ui.stop.disabled = !running || turn.stopping;
  ui.send.disabled = running;
  ui.composer.setAttribute('aria-busy', String(running));
  syncBranchButtons();
}

// ---------------------------------------------------------------- turns: stream, stop, resume
//
// A turn goes on in the service whatever becomes of its connection. Stop asks the service to stop
// it (POST …/stop); a stream cut off (a reload, a network error) is read on from its last event
// (GET …/stream with Last-Event-ID).

/** This tab's open chat and, while its reply is being written, how far the page read it: `{ chatId, reply }`. */
function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(OPEN_STORAGE)) ?? {};
  } catch {
    return {};
  }
}

function remember(chatId, reply = null) {
  sessionStorage.setItem(OPEN_STORAGE, JSON.stringify({ chatId, reply }));
}

/** The chat's reply in progress as the page last read it, `{ userMessageId, lastEventId, content }`, or null. */
function rememberedReply(chatId) {
  const open = remembered();
  return open.chatId === chatId ? open.reply : null;
}

/**
 * A reply the page reads: its chat, the user message it answers, the items that show them, the
 * last event read, whether Stop was pressed, and what to put back should the service store
 * nothing new (`takenOff`, `giveBack`, and `typed`, the text sent: see followTurn).
 */
function newTurn(chatId = null) {
  return {
    chatId,
    reading: new AbortController(),
    userMessageId: null,
    userItem: null,
    replyItem: null,
    lastEventId: null,
    stopping: false,
    takenOff: [],
    giveBack: null,
    typed: null,
  };
}

/** Stops reading the reply, as opening another chat does: the service goes on and stores it whole. */
function leaveTurn() {
  if (!state.turn) return;
  state.turn.reading.abort();
  setTurnRunning(null);
}

/** Stop (or Escape): the service stops the turn; its stream ends with the reply, stored incomplete. */
function stopTurn() {
  const turn = state.turn;
  if (!turn || turn.stopping) return;
  turn.stopping = true;
  ui.stop.disabled = true;
  // Before its first event the turn may still be waiting for the chat: then advance() sends it.
  if (turn.lastEventId) void sendStop(turn);
}

async function sendStop(turn) {
  try {
    await api(`/chats/${encodeURIComponent(turn.chatId)}/stop`, { method: 'POST' });
  } catch (error) {
    showChatError(error, turn.chatId);
    turn.stopping = false; // Stop can be pressed again
    if (state.turn === turn) ui.stop.disabled = false;
  }
}

/** The turn's stream again: after the last event read or, with none, every event of the turn running now. */
function resumeRequest(turn) {
  const headers = requestHeaders({ Accept: 'text/event-stream' });
  if (turn.lastEventId) headers['Last-Event-ID'] = turn.lastEventId;
  return fetch(`/chats/${encodeURIComponent(turn.chatId)}/stream`, { headers, signal: turn.reading.signal });
}

/** A reply being written, at the end of the list: empty, or with the text read before a reload. */
function addReplyItem(content = '') {
  const replyItem = renderMessage({ role: 'assistant', content, status: 'streaming', model: null });
  replyItem.setAttribute('aria-busy', 'true');
  replyItem.querySelector('.message__meta').append(el('span', 'badge badge--streaming', 'writing…'));
  ui.messages.append(replyItem);
  ui.messagesEmpty.hidden = true;
  scrollToEnd(true);
  return replyItem;
}

/**
 * Shows the turn's reply after the user message it answers, in place of the reply shown there (a
 * regeneration's first one, or this one, stored already). False when that message is not the
 * branch's last exchange, the chat is no longer open, or the page reads another reply. `running`:
 * the turn runs now, so a message further up the branch is having its reply regenerated, and the
 * new reply takes the place of everything after it, as it will once stored.
 */
function placeReply(turn, userMessageId, content, { running = false } = {}) {
  const userItem = [...ui.messages.children].find((item) => item.dataset.messageId === userMessageId);
  const next = userItem?.nextElementSibling;
  const lastExchange = !next?.nextElementSibling;
  if (!userItem || !(lastExchange || running) || state.turn || state.chat?.id !== turn.chatId) return false;
  turn.takenOff = next ? takeOffFrom(next) : [];
  turn.userItem = userItem;
  turn.replyItem = addReplyItem(content);
  setTurnRunning(turn);
  return true;
}

/**
 * Reads the turn's events from `request()`'s response; should the connection drop before the
 * final event, reads on from a resume after the last event read. Resolves with the final event's
 * `{ reply, failure }`, or `{}` (the stream ended without one, or nothing runs: 204); throws what
 * the service refused, or the last network error.
 */
async function readTurn(turn, request) {
  for (let tries = 0; ; tries += 1) {
    try {
      const response = await request();
      if (!response.ok) throw await errorFrom(response);
      if (response.status === 204) return {};
      for await (const { event, data, id } of readEvents(response.body)) {
        const final = showEvent(turn, event, data);
        if (final) return final;
        if (id) advance(turn, id);
      }
    } catch (error) {
      const resumable = !turn.reading.signal.aborted && !(error instanceof ApiError) && turn.lastEventId;
      if (!resumable || tries === RESUME_TRIES) throw error;
    }
    if (!turn.lastEventId || tries === RESUME_TRIES) return {};
    await new Promise((resolve) => setTimeout(resolve, tries * 1000));
    request = () => resumeRequest(turn);
  }
}

/** Shows one event of the turn; the final one returns how the turn ended. */
function showEvent(turn, event, data) {
  // Followed from its start, the turn shows once its first event names the message it answers.
  if (event === 'user_message' && !turn.replyItem) placeReply(turn, data.id, '', { running: true });
  if (!turn.replyItem) {
    turn.reading.abort();
    throw turn.reading.signal.reason;
  }
  if (event === 'user_message') {
    turn.userMessageId = data.id;
    fillMessage(turn.userItem, data);
  } else if (event === 'delta') {
    appendContent(turn.replyItem, data.content);
  } else if (event === 'assistant_message') {
    fillMessage(turn.replyItem, data);
    if (turn.stopping && data.status === 'incomplete') markStopped(turn.replyItem, 'incomplete (stopped)');
    scrollToEnd(); // its actions made it taller
    return { reply: data };
  } else if (event === 'error') {
    // The turn failed after it began; what was generated before is stored as incomplete.
    if (data.assistantMessage) fillMessage(turn.replyItem, data.assistantMessage);
    return { reply: data.assistantMessage, failure: new ApiError(data.status, data) };
  }
  return null;
}

/** Notes the event read last, in the tab too (a reload resumes after it); sends a Stop pressed before it. */
function advance(turn, id) {
  if (turn.stopping && !turn.lastEventId) void sendStop(turn);
  turn.lastEventId = id;
  if (state.chat?.id !== turn.chatId) return;
  const content = contentOf(turn.replyItem);
  remember(turn.chatId, { userMessageId: turn.userMessageId, lastEventId: id, content });
}

/**
 * Reads the turn to its end, then shows how it ended: a failure in the notice, and when the
 * service stored nothing new (a refused edit), the items the turn took off come back and
 * `giveBack` returns the text typed.
 */
async function followTurn(turn, request) {
  const sending = turn.userItem?.dataset.status === 'sending';
  let outcome;
  try {
    outcome = await readTurn(turn, request);
  } catch (error) {
    outcome = { failure: error };
  }
  if (state.turn === turn) setTurnRunning(null);
  if (!turn.reading.signal.aborted && isChatGone(outcome.failure)) {
    if (turn.typed && !ui.input.value) ui.input.value = turn.typed; // not lost with the chat
    showChatError(outcome.failure, turn.chatId);
    return;
  }
  // The page left the chat (the turn goes on without it), or no turn ran.
  if (turn.reading.signal.aborted || !turn.replyItem || state.chat?.id !== turn.chatId) return;
  const { reply, failure } = outcome;
  const { userItem, replyItem } = turn;
  if (failure) {
    showNotice(describeError(failure));
    if (!contentOf(replyItem)) replyItem.remove();
    else if (!reply) markStopped(replyItem, 'incomplete');
  } else if (!reply) {
    markStopped(replyItem, 'incomplete (the stream ended early)');
  }
  // Ended, or refused: nothing to resume. (After a network error a reload may still resume.)
  if (reply || failure instanceof ApiError) remember(turn.chatId);
  void refreshChat(turn.chatId);
  ui.input.focus();
  const storedNew = Boolean(reply) || (sending && turn.userMessageId !== null);
  if (failure && !storedNew) {
    // Nothing new was stored: the page shows the branch as it was, and the text typed is not lost.
    if (sending) userItem.remove();
    replyItem.remove();
    ui.messages.append(...turn.takenOff);
    syncBranchButtons(); // they were disabled when the turn began
    turn.giveBack?.();
  }
}

/** Sends the turn's request (`path`: messages, or a regeneration) and streams its reply after `userItem`. */
async function streamTurn(turn, path, body, userItem) {
  turn.chatId = state.chat.id;
  turn.userItem = userItem;
  turn.replyItem = addReplyItem();
  await followTurn(turn, () =>
    fetch(`/chats/${encodeURIComponent(turn.chatId)}/${path}`, {
      method: 'POST',
      headers: requestHeaders({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
      body: JSON.stringify(body),
      signal: turn.reading.signal,
    }),
  );
}

/**
 * After a chat opens, follows the reply the service is writing in it. The reply this tab was
 * reading before a reload shows as far as it was read, and goes on after its last event; else the
 * page asks for every event of the turn running now (204: none runs). That is also how it follows
 * a saved reply that answers a message further up the branch: a regeneration, if it still runs.
 */
async function attach(chatId, saved) {
  const turn = newTurn(chatId);
  if (saved && placeReply(turn, saved.userMessageId, saved.content)) {
    Object.assign(turn, { userMessageId: saved.userMessageId, lastEventId: saved.lastEventId });
    remember(chatId, saved);
  }
  await followTurn(turn, () => resumeRequest(turn));
}

/** Removes `item` and every item after it: the part of the branch a new version replaces. */
function takeOffFrom(item) {
  const taken = [];
  for (let node = item; node; node = node.nextElementSibling) taken.push(node);
  taken.forEach((node) => node.remove());
  return taken;
}

/**
 * Sends a message after the current branch or, editing, as a new version of the user message
 * `replacing`: after the same parent, so the edited message and what followed it leave the page.
 * With no chat open, it starts one first.
 */
async function sendMessage(content, { replacing } = {}) {
  const turn = newTurn();
  setTurnRunning(turn);
  clearNotice();
  turn.typed = content;
  turn.giveBack = replacing ? () => startEdit(replacing, content) : () => (ui.input.value = ui.input.value || content);
  if (!state.chat) {
    try {
      await createChat();
    } catch (error) {
      setTurnRunning(null);
      turn.giveBack();
      showNotice(describeError(error));
      return;
    }
    // Another chat was picked meanwhile (see leaveTurn): the text is not sent there, it comes back.
    if (turn.reading.signal.aborted) {
      turn.giveBack();
      return;
    }
  }
  const body = replacing ? { content, parentId: replacing.dataset.parentKey || null } : { content };
  turn.takenOff = replacing ? takeOffFrom(replacing) : [];
  const userItem = renderMessage({ role: 'user', content, status: 'completed', model: null });
  userItem.dataset.status = 'sending';
  ui.messages.append(userItem);
  await streamTurn(turn, 'messages', body, userItem);
}

/** A new reply to the message `replyItem` answers, streamed in its place (what followed it leaves the page). */
async function regenerate(replyItem) {
  const turn = newTurn();
  setTurnRunning(turn);
  clearNotice();
  // A branch alternates: the item before a reply is the user message it answers.
  const userItem = replyItem.previousElementSibling;
  turn.takenOff = takeOffFrom(replyItem);
  await streamTurn(turn, `messages/${encodeURIComponent(replyItem.dataset.messageId)}/regenerate`, {}, userItem);
}

/** Refreshes asked for so far: only the last one asked is shown. */
let refreshAsked = 0;

/**
 * After a turn: the chat's new title and counts, in the head and the list, and its messages'
 * versions. An answer that comes after a newer refresh, or after the chat was shown anew (another
 * version flipped to, a hit opened), is older than what the page shows, and is dropped.
 */
async function refreshChat(chatId) {
  const asked = (refreshAsked += 1);
  const shownAsked = chatsAsked;
  try {
    const [chat, all] = await Promise.all([
      api(`/chats/${encodeURIComponent(chatId)}`),
      readMessages(chatId, '&branch=all'),
    ]);
    if (asked !== refreshAsked || shownAsked !== chatsAsked || state.chat?.id !== chatId) return;
    state.chat = chat;
    state.siblings = groupSiblings(all.messages);
    // Another client's messages may have come before this turn's: the page then shows the branch as stored.
    const branch = all.complete && !state.turn ? branchOf(all.messages, chat.currentMessageId) : [];
    const stored = [...ui.messages.children].filter((item) => item.dataset.messageId);
    const shown = new Map(stored.map((item) => [item.dataset.messageId, item]));
    if (branch.length > 0 && branch.map((message) => message.id).join() !== [...shown.keys()].join()) {
      // The messages shown already stay as they are (a Stop's mark, the focus).
      ui.messages.replaceChildren(...branch.map((message) => shown.get(message.id) ?? renderMessage(message)));
      scrollToEnd(true);
    }
    ui.messages.querySelectorAll('.message[data-message-id]').forEach(renderActions);
    renderChatHead();
    const item = chatListItem(chatId);
    if (item) item.replaceWith(renderChatItem(chat));
    else ui.chatList.prepend(renderChatItem(chat));
    ui.chatListEmpty.hidden = true;
    if (ui.summaryPanel.open) void loadSummary();
  } catch (error) {
    // The chat list and the versions simply stay as they were, unless the chat is gone.
    if (isChatGone(error)) showChatError(error, chatId);
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

ui.stop.addEventListener('click', stopTurn);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') stopTurn();
});

// ---------------------------------------------------------------- branches: edit, regenerate, versions

/** A button that starts or switches a branch: it waits while a reply streams, which would change that branch. */
function branchButton(text, className = 'secondary') {
  const button = el('button', `${className} branch-action`, text);
  button.type = 'button';
  button.disabled = state.turn !== null;
  return button;
}

/** Version buttons at either end (`data-switch-to=""`) have nowhere to go. */
function syncBranchButtons() {
  for (const button of ui.messages.querySelectorAll('.branch-action')) {
    button.disabled = state.turn !== null || button.dataset.switchTo === '';
  }
}

/**
 * A stored message's "‹ n / m ›" (when it has siblings) and its Edit (yours) or Regenerate (replies
 * that answer the message before them: an imported one may answer none, and the service refuses it).
 */
function renderActions(item) {
  const actions = item.querySelector('.message__actions');
  // Rebuilt after every turn: only the versions change, so the action button (and its focus) stays.
  actions.querySelector('.versions')?.remove();
  const isUser = item.dataset.role === 'user';
  const answersParent = item.dataset.inReplyTo !== '' && item.dataset.inReplyTo === item.dataset.parentKey;
  if (!actions.querySelector('.message__action') && (isUser || answersParent)) {
    const action = branchButton(isUser ? 'Edit' : 'Regenerate', 'secondary message__action');
    action.addEventListener('click', () => (isUser ? startEdit(item) : void regenerate(item)));
    actions.append(action);
  }
  const siblings = state.siblings.get(item.dataset.parentKey) ?? [];
  const index = siblings.indexOf(item.dataset.messageId);
  if (siblings.length < 2 || index < 0) return;
  const versions = el('div', 'versions');
  versions.setAttribute('role', 'group');
  versions.setAttribute('aria-label', `Version ${index + 1} of ${siblings.length}`);
  const count = el('span', 'versions__count', `${index + 1} / ${siblings.length}`);
  count.setAttribute('aria-hidden', 'true'); // the group's label says it
  versions.append(versionButton(item, siblings[index - 1], -1), count, versionButton(item, siblings[index + 1], 1));
  actions.prepend(versions);
}

function versionButton(item, siblingId, step) {
  const label = step < 0 ? 'Previous version' : 'Next version';
  const button = branchButton(step < 0 ? '‹' : '›', 'secondary versions__step');
  button.setAttribute('aria-label', label);
  button.title = label;
  button.dataset.step = String(step);
  button.dataset.switchTo = siblingId ?? '';
  button.disabled ||= !siblingId;
  button.addEventListener('click', () => void switchVersion(item.dataset.parentKey, siblingId, step));
  return button;
}

/** Makes a sibling current (the service continues it to its newest descendant) and shows that branch. */
async function switchVersion(parentKey, siblingId, step) {
  clearNotice();
  const asked = (chatsAsked += 1);
  const chatId = state.chat.id;
  try {
    const chat = await api(`/chats/${encodeURIComponent(chatId)}`, {
      method: 'PATCH',
      body: { currentMessageId: siblingId },
    });
    if (!(await showChat(chat, undefined, asked))) return;
    // The list was drawn anew: keep the keyboard on the versions of the message flipped.
    const item = [...ui.messages.children].find((node) => node.dataset.parentKey === parentKey);
    const steps = item ? [...item.querySelectorAll('.versions__step:enabled')] : [];
    (steps.find((button) => button.dataset.step === String(step)) ?? steps[0])?.focus();
  } catch (error) {
    showChatError(error, chatId);
  }
}

/** Edits a user message in place: Save sends the text as a new version of it; Cancel leaves it as it was. */
function startEdit(item, text = contentOf(item)) {
  const fieldId = `edit-${item.dataset.messageId}`;
  const form = el('form', 'edit-form');
  const label = el('label', null, 'Edit message');
  label.htmlFor = fieldId;
  const field = el('textarea');
  field.id = fieldId;
  field.rows = 3;
  field.maxLength = 32000;
  field.value = text;
  const hint = el('p', 'hint', 'Enter saves it as a new version, Shift+Enter adds a line, Escape cancels.');
  hint.id = `${fieldId}-hint`;
  field.setAttribute('aria-describedby', hint.id);
  const save = branchButton('Save', 'edit-form__save');
  save.type = 'submit';
  const cancel = el('button', 'secondary', 'Cancel');
  cancel.type = 'button';
  const buttons = el('div', 'row');
  buttons.append(save, cancel);
  form.append(label, field, hint, buttons);

  const close = () => {
    form.remove();
    item.classList.remove('message--editing');
  };
  cancel.addEventListener('click', () => {
    close();
    item.querySelector('.message__action')?.focus();
  });
  field.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === 'Escape') {
      event.stopPropagation(); // cancels the edit, not a reply streaming meanwhile
      cancel.click();
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state.turn || field.value.trim() === '') return;
    close();
    void sendMessage(field.value, { replacing: item });
  });

  item.classList.add('message--editing'); // hides the text and the actions while the form shows
  item.querySelector('.message__content').after(form);
  field.focus();
}

// ---------------------------------------------------------------- search

/** The snippet's text with each match in a <mark>: text nodes only, so nothing in it is read as markup. */
function highlighted(text, matches) {
  const parts = [];
  let at = 0;
  for (const [start, end] of [...matches].sort((a, b) => a[0] - b[0])) {
    if (start < at || end <= start || end > text.length) continue; // overlapping or out of range: left plain
    parts.push(text.slice(at, start), el('mark', null, text.slice(start, end)));
    at = end;
  }
  parts.push(text.slice(at));
  return parts;
}

function renderHit(hit) {
  const item = el('li');
  const button = el('button', 'search-hit');
  button.type = 'button';
  button.dataset.chatId = hit.chatId;
  button.dataset.messageId = hit.message.id;
  const snippet = el('span', 'search-hit__snippet');
  snippet.append(...highlighted(hit.snippet.text, hit.snippet.matches));
  const author = hit.message.role === 'user' ? 'You' : 'Assistant';
  button.append(
    el('span', 'search-hit__title', hit.chatTitle || 'Untitled chat'),
    snippet,
    el('span', 'search-hit__meta', `${author} · ${formatTime(hit.message.createdAt)}`),
  );
  button.addEventListener('click', () => void openChat(hit.chatId, { at: hit.message.id }));
  item.append(button);
  return item;
}

/** Searches the words typed, or (`more`) reads on the results shown. */
async function search({ more = false } = {}) {
  const q = more ? state.search.q : ui.searchInput.value.trim();
  if (!q) {
    clearSearch();
    return;
  }
  const asked = (state.search.asked += 1);
  const cursor = more ? `&cursor=${encodeURIComponent(state.search.nextCursor)}` : '';
  clearNotice();
  ui.searchResults.setAttribute('aria-busy', 'true');
  try {
    const page = await api(`/search?q=${encodeURIComponent(q)}&limit=20${cursor}`);
    if (asked !== state.search.asked) return; // a newer search (or Clear) came meanwhile
    state.search.q = q;
    state.search.nextCursor = page.nextCursor;
    if (!more) ui.searchHits.replaceChildren();
    ui.searchHits.append(...page.data.map(renderHit));
    ui.moreHits.hidden = !page.nextCursor;
    const found = ui.searchHits.children.length > 0;
    ui.searchStatus.textContent = found ? `Messages with “${q}”, best match first:` : `No messages match “${q}”.`;
    ui.searchResults.hidden = false;
  } catch (error) {
    if (asked !== state.search.asked) return;
    if (!more) clearSearch();
    showNotice(describeError(error));
  } finally {
    if (asked === state.search.asked) ui.searchResults.removeAttribute('aria-busy');
  }
}

function clearSearch() {
  state.search = { q: '', nextCursor: null, asked: state.search.asked + 1 };
  ui.searchResults.hidden = true;
  ui.searchResults.removeAttribute('aria-busy');
  ui.searchHits.replaceChildren();
  ui.searchStatus.textContent = '';
}

ui.searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void search();
});
ui.searchInput.addEventListener('input', () => {
  if (ui.searchInput.value === '') clearSearch(); // the field's own clear button
});
onEscape(ui.searchInput, () => {
  ui.searchInput.value = '';
  clearSearch();
});
ui.moreHits.addEventListener('click', () => void search({ more: true }));
ui.clearSearch.addEventListener('click', () => {
  ui.searchInput.value = '';
  clearSearch();
  ui.searchInput.focus();
});

// ---------------------------------------------------------------- export and import

const EXPORT_FORMATS = {
  json: { query: '', accept: 'application/json', extension: 'json' },
  markdown: { query: '?format=markdown', accept: 'text/markdown', extension: 'md' },
};

/** The chat's title as a file name (no characters that separate or quote paths), else its id. */
function exportFileName(chat, extension) {
  const title = (chat.title ?? '')
    .replace(/[\\/:*?"<>|\p{Cc}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 100)
    .replace(/^[.\s]+|[.\s]+$/g, '');
  return `${title || chat.id}.${extension}`;
}

/** Fetched, not linked to: a link could not send the API key. Saved through a Blob and an <a download>. */
async function exportChat(format) {
  const chat = state.chat;
  if (!chat) return;
  const { query, accept, extension } = EXPORT_FORMATS[format];
  clearNotice();
  try {
    const response = await fetch(`/chats/${encodeURIComponent(chat.id)}/export${query}`, {
      headers: requestHeaders({ Accept: accept }),
    });
    if (!response.ok) throw await errorFrom(response);
    const url = URL.createObjectURL(await response.blob());
    const link = el('a');
    link.href = url;
    link.download = exportFileName(chat, extension);
    link.click();
    // The browser may read the URL after click() returns.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showChatError(error, chat.id);
  }
}

ui.exportJson.addEventListener('click', () => void exportChat('json'));
ui.exportMarkdown.addEventListener('click', () => void exportChat('markdown'));

/** Posts the file's text as it is, then lists and opens the new chat; a refusal names the first bad field. */
async function importChat(file) {
  clearNotice();
  try {
    const chat = await api('/chats/import', { method: 'POST', json: await file.text() });
    await loadChats(); // newest first: the new chat heads it
    await openChat(chat.id);
    ui.input.focus();
  } catch (error) {
    showNotice(describeError(error));
  }
}

ui.importChat.addEventListener('click', () => ui.importFile.click());
ui.importFile.addEventListener('change', () => {
  const [file] = ui.importFile.files;
  ui.importFile.value = ''; // picking the same file again is a change too
  if (file) void importChat(file);
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

/** Summaries asked for so far: only the last one asked is shown. */
let summaryAsked = 0;

/** Drops the summary shown, and any answer still on its way. */
function clearSummary() {
  summaryAsked += 1;
  ui.summaryBody.replaceChildren();
}

async function loadSummary({ abstract = false } = {}) {
  if (!state.chat) {
    ui.summaryBody.replaceChildren(el('p', 'hint', 'Open a chat to see its summary.'));
    return;
  }
  const asked = (summaryAsked += 1);
  const chatId = state.chat.id;
  ui.summaryBody.setAttribute('aria-busy', 'true');
  try {
    const query = abstract ? '?abstract=true' : '';
    const summary = await api(`/chats/${encodeURIComponent(chatId)}/summary${query}`);
    if (asked !== summaryAsked) return; // another chat's summary (or a newer one) was asked for meanwhile
    renderSummary(summary);
  } catch (error) {
    if (asked !== summaryAsked) return;
    if (isChatGone(error)) {
      ui.summaryBody.removeAttribute('aria-busy');
      showChatError(error, chatId);
      return;
    }
    ui.summaryBody.replaceChildren(el('p', 'error', describeError(error)));
  } finally {
    if (asked === summaryAsked) ui.summaryBody.removeAttribute('aria-busy');
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
    // The chat in the address, else the one this tab had open (before a reload).
    const chatId = addressedChatId() || remembered().chatId;
    if (chatId) await openChat(chatId);
  } catch (error) {
    showNotice(describeError(error));
  }
}

// A chat's address typed or pasted into this tab opens it, as picking it from the list does. (The
// page's own changes of address replace it, which fires no hashchange.)
window.addEventListener('hashchange', () => {
  const chatId = addressedChatId();
  if (chatId && chatId !== state.chat?.id) void openChat(chatId);
});

renderKeyState();
renderChatHead();
void loadProvider();
void reload();
