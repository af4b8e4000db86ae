/**
 * What a request is about to spend, before it goes upstream: its input counted with the tokenizer that
 * count_tokens uses, and its output at the request's own cap (max_tokens and its spellings in each client
 * API) or the configured default. Reservations are made from this and settled to the real usage later,
 * so the estimate only has to be close, never exact; it reads the body of any client API without
 * decoding it, because reserving happens before the handler runs.
 */
import { MEMO_MIN_CHARS, rememberedCount, type CountText } from './token-count.ts';

export interface RequestEstimate {
  inputTokens: number;
  outputTokens: number;
  /** The `model` the client asked for, if any. */
  model?: string;
}

/** OpenAI's chat format: 3 tokens around each message, 3 to prime the answer (as in token-count.ts). */
const MESSAGE_FRAMING = 3;
const REPLY_PRIMING = 3;
/** An image at high detail (the larger of OpenAI's and Anthropic's documented figures). */
const IMAGE_TOKENS = 1600;
/**
 * Text past this many characters is estimated at 3 characters a token (more than the tokenizer finds in
 * English or code): tokenizing a very long prompt costs milliseconds on the request path, and the
 * reservation is settled to the real count anyway.
 */
const TOKENIZE_CHARS = 32_768;

/** Fields whose strings are what the model reads; everything else in a body is settings. */
const CONTENT_FIELDS = ['system', 'instructions', 'prompt', 'input', 'tools', 'functions'] as const;
/** Keys inside content that hold markers or binary data, not text the model reads as text. */
const SKIPPED_KEYS = new Set(['type', 'role', 'cache_control', 'signature', 'id', 'tool_call_id', 'detail', 'mime_type', 'media_type']);
const BINARY_KEYS = new Set(['data', 'image_url', 'url', 'images', 'file_data', 'image']);

export function estimateRequest(body: unknown, count: CountText, defaultOutput: number): RequestEstimate {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { inputTokens: REPLY_PRIMING, outputTokens: defaultOutput };
  const b = body as Record<string, unknown>;
  const walker = new TextWalker(count);
  let framing = REPLY_PRIMING;
  if (Array.isArray(b.messages)) {
    framing += b.messages.length * MESSAGE_FRAMING;
    walker.walk(b.messages);
  }
  for (const field of CONTENT_FIELDS) if (b[field] !== undefined) walker.walk(b[field]);
  const cap = firstCount(b.max_tokens, b.max_completion_tokens, b.max_output_tokens, (b.options as Record<string, unknown> | undefined)?.num_predict);
  const choices = typeof b.n === 'number' && Number.isInteger(b.n) && b.n > 1 ? b.n : 1;
  return {
    inputTokens: framing + walker.total(),
    outputTokens: (cap ?? defaultOutput) * choices,
    model: typeof b.model === 'string' && b.model !== '' ? b.model : undefined,
  };
}

function firstCount(...values: unknown[]): number | undefined {
  for (const value of values) if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.ceil(value);
  return undefined;
}

class TextWalker {
  private readonly count: CountText;
  private tokens = 0;
  private chars = 0;
  private pieces: string[] = [];

  constructor(count: CountText) {
    this.count = count;
  }

  walk(value: unknown, key?: string): void {
    if (typeof value === 'string') {
      if (key !== undefined && BINARY_KEYS.has(key)) this.tokens += IMAGE_TOKENS;
      else this.text(value);
    } else if (Array.isArray(value)) {
      for (const item of value) this.walk(item, key);
    } else if (value !== null && typeof value === 'object') {
      for (const [name, inner] of Object.entries(value)) {
        if (SKIPPED_KEYS.has(name)) continue;
        // Tool call arguments and schemas are read as the JSON text they are.
        if (name === 'input_schema' || name === 'parameters' || name === 'input' && typeof inner === 'object') this.text(JSON.stringify(inner));
        else this.walk(inner, name);
      }
    } else if (typeof value === 'number' || typeof value === 'boolean') {
      this.tokens += 1;
    }
  }

  private text(value: string): void {
    if (value === '') return;
    // A long text seen before (an agent's system prompt, tools, earlier turns) is known exactly and costs no
    // tokenizing, so it leaves the budget below to the texts that are new: each turn counts a little more exactly.
    const known = rememberedCount(value);
    if (known !== undefined) this.tokens += known;
    else if (this.chars + value.length > TOKENIZE_CHARS) this.tokens += Math.ceil(value.length / 3);
    else {
      this.chars += value.length;
      // Long texts are counted alone, so that the next request finds them; short ones together, in one call.
      if (value.length >= MEMO_MIN_CHARS) this.tokens += this.count(value);
      else this.pieces.push(value);
    }
  }

  total(): number {
    // One tokenizer call for the whole text: cheaper than one per string.
    return this.tokens + (this.pieces.length ? this.count(this.pieces.join('\n')) : 0);
  }
}
