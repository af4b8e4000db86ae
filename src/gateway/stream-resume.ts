/**
 * Stream resume (route `resume_streams: true`): an upstream stream that fails after the client already got part
 * of the answer (a reset, an error event, stream_idle_timeout) is continued on the next candidate instead of
 * ending with an error event.
 *
 * The continuation is the same request with the partial answer as a trailing assistant message (a prefill; each
 * upstream encoder says it in its dialect's own way), always on the translated lane, so it arrives as canonical
 * events. They are spliced into the stream the client already has: no second `start`, text continued where it
 * was cut, one usage event with both attempts' usage summed. On the lossless lane the client got the first
 * provider's own frames; the `resumed` event carries the canonical reading of them, so the route's encoder is
 * brought up to the same point (message started, same block open) without writing, and encodes the rest.
 *
 * Not resumed: a stream cut inside a tool call (its arguments cannot be prefilled reliably: the stream ends with
 * the error event, as without resume), one that had already finished, a failure another provider cannot fix
 * (the client's own 4xx), and a client that left.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { relayDialect } from '../providers/relay-dialects.ts';
import { contentText, type CanonicalMessage, type CanonicalRequest, type StreamEvent, type Usage } from '../core/canonical.ts';
import { relayedEvents, type ChatStreamEvent, type ResumedStream, type WireDialect } from '../core/lossless.ts';
import type { DispatchContext, DispatchResult, OpenStream, ResumeRecord, StreamResumes } from './attempts.ts';
import { asUpstream } from './settlement.ts';
import { loadedTokenizer } from './token-count.ts';

/** Opens a stream for `request` over `candidates` (the failover walk with a stream's opening attempt). */
export type Reopen = (request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext) => Promise<DispatchResult<OpenStream>>;

/** At most this many resumes per stream: a request that breaks every provider it reaches is not chased forever. */
const MAX_RESUMES = 3;
/** The chars-per-token estimate for a cut attempt's counts when no tokenizer is loaded. */
const CHARS_PER_TOKEN = 4;

export interface ResumeOptions {
  request: CanonicalRequest;
  candidates: readonly ModelTarget[];
  ctx: DispatchContext;
  resume: StreamResumes;
  metrics: Metrics;
  reopen: Reopen;
  /** How long a continuation may take to open: the route's own timeout, counted from the cut. */
  windowMs: number;
}

/** The stream `opened` with resume on: the same first event, the rest continued past a cut. */
export function resumable(opened: DispatchResult<OpenStream>, opts: ResumeOptions): DispatchResult<OpenStream> {
  return { ...opened, value: { first: opened.value.first, rest: new ResumingStream(opened, opts) } };
}

class ResumingStream implements AsyncIterator<ChatStreamEvent> {
  private current: AsyncIterator<ChatStreamEvent>;
  private target: ModelTarget;
  private readonly opts: ResumeOptions;
  /** The whole answer so far, across attempts: what a continuation is prefilled with. */
  private text = '';
  private reasoning = '';
  private toolCallOpen = false;
  private finished = false;
  /** This attempt's own output (for its estimate when cut) and the usage it reported. */
  private attemptChars = 0;
  private attemptUsage: Usage | undefined;
  /** Lossless lane: the provider's frames the client got, read into canonical events at a cut. */
  private relayed: { dialect: WireDialect; frames: string } | undefined;
  /** Usage of the attempts before the current one, added to the current one's usage event. */
  private earlier: Usage | undefined;
  /** Whitespace taken off the prefill's end (Anthropic refuses it there): dropped again from the continuation's start. */
  private trimmed = '';
  private pending: ChatStreamEvent | undefined;
  private resumes = 0;
  /** The prefill the current attempt was sent (its input is the prompt plus this). */
  private prefilled = '';
  /** The last cut came after the answer's text had begun. */
  private cutInText = false;

  constructor(opened: DispatchResult<OpenStream>, opts: ResumeOptions) {
    this.current = opened.value.rest;
    this.target = opened.target;
    this.opts = opts;
    this.observe(opened.value.first);
  }

  async next(): Promise<IteratorResult<ChatStreamEvent>> {
    if (this.pending) {
      const value = this.pending;
      this.pending = undefined;
      return { done: false, value };
    }
    for (;;) {
      let result: IteratorResult<ChatStreamEvent>;
      try {
        result = await this.current.next();
      } catch (error) {
        return { done: false, value: await this.resumeAfter(error) };
      }
      if (result.done) {
        if (this.resumes > 0) this.opts.resume.spent.push(this.spentByAttempt());
        return result;
      }
      const event = this.splice(result.value);
      if (event) return { done: false, value: event };
    }
  }

  async return(): Promise<IteratorResult<ChatStreamEvent>> {
    // The client left (or the writer failed): the current attempt's upstream request is aborted and settled.
    await this.current.return?.();
    return { done: true, value: undefined };
  }

  /** Notes what an event adds to the answer; continuation events are spliced first (see splice). */
  private observe(event: ChatStreamEvent): void {
    switch (event.type) {
      case 'relayed':
        if (this.relayed) this.relayed.frames += event.text;
        else this.relayed = { dialect: event.lane.dialect, frames: event.text };
        break;
      case 'text':
        this.text += event.text;
        this.attemptChars += event.text.length;
        break;
      case 'reasoning':
        this.reasoning += event.text;
        this.attemptChars += event.text.length;
        break;
      case 'tool_call_start':
        this.toolCallOpen = true;
        break;
      case 'tool_call_delta':
        this.attemptChars += event.arguments.length;
        break;
      case 'usage':
        this.attemptUsage = event.usage;
        break;
      case 'finish':
        this.finished = true;
        break;
      default:
        break;
    }
  }

  /**
   * One event of the stream as the client should get it. Before any resume, the event itself. After one: no
   * second start, the continuation's text without the whitespace the prefill lost, usage summed.
   */
  private splice(event: ChatStreamEvent): ChatStreamEvent | undefined {
    if (this.resumes === 0) {
      this.observe(event);
      return event;
    }
    if (event.type === 'start') return undefined;
    // Cut in the text: the continuation's own thinking before it goes on is not written (the client's answer is
    // past its reasoning; a second one after the text would open a new block or item). Its tokens still count.
    if (this.cutInText && (event.type === 'reasoning' || event.type === 'reasoning_signature' || event.type === 'reasoning_redacted')) return undefined;
    if (event.type === 'text' && this.trimmed) {
      const text = dropLeading(event.text, this.trimmed);
      this.trimmed = text.rest;
      if (text.text === '') return undefined;
      event = { type: 'text', text: text.text };
    } else if (event.type === 'reasoning' || event.type === 'tool_call_start') this.trimmed = '';
    this.observe(event);
    if (event.type === 'usage' && this.earlier) return { type: 'usage', usage: addUsage(this.earlier, event.usage) };
    return event;
  }

  /** The cut: a continuation on the next candidate, announced by a `resumed` event; or the error, thrown on. */
  private async resumeAfter(error: unknown): Promise<ResumedStream> {
    const { ctx, metrics } = this.opts;
    const failure = asUpstream(error, this.target);
    const from = this.target.provider;
    const resumable = failure.retryable && failure.kind !== 'aborted' && !ctx.signal.aborted && !this.finished;
    if (!resumable) throw error;
    // Lossless lane: what the client got is the provider's frames; read them, once, into the answer so far.
    const prior = this.readRelayed();
    const frames = this.relayed?.frames;
    if (this.toolCallOpen || this.resumes >= MAX_RESUMES) {
      metrics.streamResumes.inc({ provider: from, outcome: this.toolCallOpen ? 'tool_call' : 'exhausted' });
      throw error;
    }
    const record: ResumeRecord = { from, reason: failure.kind, afterChars: this.text.length + this.reasoning.length };
    this.opts.resume.resumes.push(record);
    this.opts.resume.spent.push(this.spentByAttempt(true));
    const spent = this.opts.resume.spent;
    this.earlier = spent.slice(1).reduce((sum, part) => addUsage(sum, part.usage), spent[0].usage);

    this.cutInText = this.text.length > 0;
    const continuation = this.continuation();
    let opened: DispatchResult<OpenStream>;
    try {
      opened = await this.reopen(continuation);
    } catch {
      metrics.streamResumes.inc({ provider: from, outcome: 'failed' });
      // The cut is what the client is told about: the continuation's own failures are in the trail.
      throw error;
    }
    metrics.streamResumes.inc({ provider: from, outcome: 'resumed' });
    record.to = opened.target.provider;
    this.resumes++;
    this.current = opened.value.rest;
    this.target = opened.target;
    this.attemptChars = 0;
    this.attemptUsage = undefined;
    this.relayed = undefined;
    this.pending = this.splice(opened.value.first);
    return prior ? { type: 'resumed', provider: opened.target.provider, prior, frames } : { type: 'resumed', provider: opened.target.provider };
  }

  /**
   * The continuation opened on the first candidate that takes it. A provider that refuses it (a 4xx, such as a
   * Gemini model that takes no trailing model turn) ends a failover walk, as a client's own error does; but the
   * request was accepted before, so the refusal is that provider's own, and the candidates not tried yet are.
   */
  private async reopen(continuation: CanonicalRequest): Promise<DispatchResult<OpenStream>> {
    const { ctx } = this.opts;
    const walk: DispatchContext = { ...ctx, deadlineAt: Date.now() + this.opts.windowMs, hedgeAfterMs: undefined };
    let candidates = this.order();
    for (;;) {
      const before = ctx.trail?.length ?? 0;
      try {
        return await this.opts.reopen(continuation, candidates, walk);
      } catch (error) {
        const attempts = ctx.trail?.slice(before) ?? [];
        const refused = attempts.some((a) => a.failure && !a.failure.retryable && a.failure.kind !== 'aborted');
        const tried = new Set(attempts.map((a) => a.target.provider));
        candidates = candidates.filter((t) => !tried.has(t.provider));
        if (!refused || candidates.length === 0 || ctx.signal.aborted || Date.now() >= walk.deadlineAt) throw error;
      }
    }
  }

  /** The relayed frames so far as canonical events (and the answer so far taken from them), or undefined. */
  private readRelayed(): StreamEvent[] | undefined {
    if (!this.relayed) return undefined;
    const prior: StreamEvent[] = [];
    relayDialect(this.relayed.dialect).decodeEvents(relayedEvents(this.relayed.frames), prior);
    for (const event of prior) this.observe(event);
    return prior;
  }

  /** The request again, with the answer so far as the assistant's turn to continue, on the translated lane. */
  private continuation(): CanonicalRequest {
    const { request } = this.opts;
    const messages = request.messages.slice();
    const last = messages.at(-1);
    // A client's own prefill (Anthropic clients use them) is continued, not followed by a second assistant turn.
    const before = last?.role === 'assistant' && !last.toolCalls?.length ? (messages.pop(), contentText(last.content)) : '';
    const whole = before + this.text;
    const kept = whole.trimEnd();
    this.trimmed = whole.slice(kept.length);
    this.prefilled = kept + this.reasoning;
    if (kept || this.reasoning) {
      const prefill: CanonicalMessage = { role: 'assistant', content: kept };
      if (this.reasoning) prefill.reasoning = [{ text: this.reasoning }];
      messages.push(prefill);
    }
    const { lossless: _lossless, ...rest } = request;
    return { ...rest, messages, stream: true };
  }

  /** The candidates for a continuation: every other provider in order, then the one that was cut. */
  private order(): readonly ModelTarget[] {
    const cut = this.target.provider;
    const others = this.opts.candidates.filter((t) => t.provider !== cut);
    return [...others, ...this.opts.candidates.filter((t) => t.provider === cut)];
  }

  /**
   * What the current attempt spent: its own usage event when it sent one. A cut attempt seldom did (usage comes
   * at the end): then its input is counted from the request and its output from what it streamed.
   */
  private spentByAttempt(cut = false): StreamResumes['spent'][number] {
    if (this.attemptUsage && !cut) return { target: this.target, usage: this.attemptUsage, estimated: false };
    const count = loadedTokenizer() ?? ((text: string) => Math.ceil(text.length / CHARS_PER_TOKEN));
    const input = this.attemptUsage?.inputTokens ?? count(promptText(this.opts.request, this.prefilled));
    const output = Math.max(this.attemptUsage?.outputTokens ?? 0, Math.ceil(this.attemptChars / CHARS_PER_TOKEN));
    return { target: this.target, usage: { inputTokens: input, outputTokens: output }, estimated: true };
  }
}

/** The prompt's text (messages, system included, and tool definitions), with the prefill a continuation carried, for estimating its input tokens. */
function promptText(request: CanonicalRequest, prefill: string): string {
  let text = prefill;
  for (const m of request.messages) text += contentText(m.content);
  for (const tool of request.tools ?? []) text += tool.name + (tool.description ?? '') + JSON.stringify(tool.parameters);
  return text;
}

/** `text` without as much of `lead` as it starts with; `rest` is what of `lead` is still to be dropped. */
function dropLeading(text: string, lead: string): { text: string; rest: string } {
  let i = 0;
  while (i < text.length && i < lead.length && text[i] === lead[i]) i++;
  // Whitespace the continuation did not repeat is not looked for further on.
  if (i < lead.length && i < text.length) return { text: text.slice(i), rest: '' };
  return { text: text.slice(i), rest: lead.slice(i) };
}

function addUsage(a: Usage, b: Usage): Usage {
  const sum: Usage = { inputTokens: a.inputTokens + b.inputTokens, outputTokens: a.outputTokens + b.outputTokens };
  const cacheRead = (a.cacheReadTokens ?? 0) + (b.cacheReadTokens ?? 0);
  const cacheWrite = (a.cacheWriteTokens ?? 0) + (b.cacheWriteTokens ?? 0);
  const reasoning = (a.reasoningTokens ?? 0) + (b.reasoningTokens ?? 0);
  if (cacheRead) sum.cacheReadTokens = cacheRead;
  if (cacheWrite) sum.cacheWriteTokens = cacheWrite;
  if (reasoning) sum.reasoningTokens = reasoning;
  return sum;
}
