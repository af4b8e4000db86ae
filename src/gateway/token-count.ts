/**
 * Counting a Messages request's input tokens here, for count_tokens requests no Anthropic upstream answers
 * (OpenAI-type, Ollama and mock providers, or every Anthropic candidate failed).
 *
 * Text goes through a real BPE tokenizer: gpt-tokenizer's o200k_base, the encoding of current OpenAI models
 * (exact for them; Claude's own tokenizer is not public, see docs/api.md for how close it comes). Counted is
 * what the model would see: the system prompt, every message's text, tool definitions (name, description,
 * schema JSON), tool calls and results, plus the chat format's framing. Images and documents are estimated
 * from documented per-item figures; thinking blocks of earlier turns are not counted (Anthropic ignores
 * them too). Block types not known here are counted from their JSON.
 */
import { LRUCache } from 'lru-cache';
import type { CountTokensRequest } from '../dialects/anthropic/count-tokens.ts';

export type CountText = (text: string) => number;

/**
 * Figures for the two families a local count can be for. The framing is OpenAI's published chat format
 * (3 tokens around each message, 3 to prime the answer); the rest is documented by each provider.
 */
const ESTIMATES = {
  other: {
    messageFraming: 3,
    replyPriming: 3,
    // OpenAI: a 1024×1024 image at high detail is 85 + 4 tiles × 170.
    imageTokens: 765,
    toolPrompt: { auto: 0, forced: 0 },
  },
  claude: {
    messageFraming: 3,
    replyPriming: 3,
    // Anthropic: width × height / 750, and images over ~1.15 megapixels are scaled down first: at most ~1,600.
    imageTokens: 1600,
    // Anthropic's tool-use system prompt for current models: 346 tokens with tool_choice auto or none, 313 with any or tool.
    toolPrompt: { auto: 346, forced: 313 },
  },
} as const;

/** Anthropic documents 1,500 to 3,000 tokens per PDF page (its text and an image of it): the middle. */
const PDF_PAGE_TOKENS = 2250;

let loading: Promise<CountText> | undefined;
let loaded: CountText | undefined;

/** The tokenizer if it has been loaded already (for estimates that cannot wait for it). */
export const loadedTokenizer = (): CountText | undefined => loaded;

/**
 * Texts at least this long are remembered with their count: a coding agent sends the same system prompt,
 * tool descriptions and earlier turns with every request, and counting them again costs about a millisecond
 * per 25 KB on the request path. Only counts are kept (the texts are their keys, up to MEMO_CHARS in all).
 */
export const MEMO_MIN_CHARS = 512;
const MEMO_CHARS = 8_000_000;
const memo = new LRUCache<string, number>({ maxSize: MEMO_CHARS, sizeCalculation: (_count, text) => text.length });

/** The count of a text counted before (MEMO_MIN_CHARS or longer), without counting it. */
export const rememberedCount = (text: string): number | undefined => (text.length >= MEMO_MIN_CHARS ? memo.get(text) : undefined);

/**
 * The tokenizer, loaded on the first local count and kept: o200k_base takes a few hundred milliseconds and
 * ~20 MB of heap to load, which a gateway that only forwards counts never pays.
 */
export function loadTokenizer(): Promise<CountText> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then(({ countTokens }) => {
    // Text that spells a special token (`<|endoftext|>`) is plain text to the model: counted, never refused.
    const options = { disallowedSpecial: new Set<string>() };
    loaded = (text: string) => {
      if (text.length < MEMO_MIN_CHARS) return text === '' ? 0 : countTokens(text, options);
      let count = memo.get(text);
      if (count === undefined) memo.set(text, (count = countTokens(text, options)));
      return count;
    };
    return loaded;
  });
  return loading;
}

export interface LocalCountOptions {
  /** The count stands in for a Claude model's (every Anthropic candidate failed): Claude's documented figures. */
  claude?: boolean;
}

export async function countLocally(request: CountTokensRequest, opts: LocalCountOptions = {}): Promise<number> {
  const count = await loadTokenizer();
  const walker = new Walker(count, opts.claude ? ESTIMATES.claude : ESTIMATES.other);
  return walker.request(request);
}

/** Walks a request's content. Nested content is only loosely validated, so anything JSON can hold is counted, never thrown on. */
class Walker {
  private readonly count: CountText;
  private readonly figures: (typeof ESTIMATES)[keyof typeof ESTIMATES];

  constructor(count: CountText, figures: (typeof ESTIMATES)[keyof typeof ESTIMATES]) {
    this.count = count;
    this.figures = figures;
  }

  request(request: CountTokensRequest): number {
    const { figures } = this;
    let total = figures.replyPriming;
    const system = request.system;
    if (system !== undefined && system.length > 0) total += figures.messageFraming + this.content(system);
    for (const message of request.messages) total += figures.messageFraming + this.content(message.content);
    const tools = request.tools ?? [];
    for (const tool of tools) total += this.tool(tool);
    if (tools.length > 0) {
      const forced = request.tool_choice?.type === 'any' || request.tool_choice?.type === 'tool';
      total += forced ? figures.toolPrompt.forced : figures.toolPrompt.auto;
    }
    return total;
  }

  /** A string, a list of blocks, or (in places the schema leaves open) any JSON value. */
  private content(value: unknown): number {
    if (typeof value === 'string') return this.count(value);
    if (Array.isArray(value)) {
      let total = 0;
      for (const item of value) total += isObject(item) ? this.block(item) : this.content(item);
      return total;
    }
    return this.text(value);
  }

  /** A value as the text the model reads: strings as they are, anything else as its JSON. */
  private text(value: unknown): number {
    if (value === undefined || value === null) return 0;
    return this.count(typeof value === 'string' ? value : JSON.stringify(value));
  }

  private block(block: Record<string, unknown>): number {
    switch (block.type) {
      case 'text':
        return this.text(block.text);
      case 'image':
        return this.figures.imageTokens;
      case 'document':
        return this.document(block);
      case 'tool_use':
        return this.text(block.name) + this.text(block.input ?? {});
      case 'tool_result':
        return this.content(block.content);
      case 'search_result':
        return this.text(block.title) + this.text(block.source) + this.content(block.content);
      case 'thinking':
      case 'redacted_thinking':
        return 0;
      default:
        // Server-tool calls and results, and types added later: their JSON is the best guess at what the model reads.
        return this.text(withoutCacheControl(block));
    }
  }

  private document(block: Record<string, unknown>): number {
    const source = isObject(block.source) ? block.source : {};
    const framing = this.text(block.title) + this.text(block.context);
    switch (source.type) {
      case 'text':
        return framing + this.text(source.data);
      case 'content':
        return framing + this.content(source.content);
      case 'base64':
        return framing + pdfPages(typeof source.data === 'string' ? source.data : '') * PDF_PAGE_TOKENS;
      default:
        // A URL or an uploaded file: the gateway does not fetch it, so it counts as one page.
        return framing + PDF_PAGE_TOKENS;
    }
  }

  private tool(tool: Record<string, unknown>): number {
    // Server tools (web search, bash, ...) have a type and settings instead of a schema: their JSON.
    if (tool.input_schema === undefined) return this.text(withoutCacheControl(tool));
    return this.text(tool.name) + this.text(tool.description) + this.text(tool.input_schema);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** cache_control is an instruction to the API, not something the model reads. */
function withoutCacheControl(block: Record<string, unknown>): Record<string, unknown> {
  const { cache_control: _, ...rest } = block;
  return rest;
}

/**
 * Pages of a base64 PDF: its `/Type /Page` objects (hand-written: a PDF parser would be a large dependency
 * for an estimate). PDFs whose page objects sit in compressed streams show none and count as one page.
 */
function pdfPages(base64: string): number {
  const text = Buffer.from(base64, 'base64').toString('latin1');
  const pages = text.match(/\/Type\s*\/Page(?![A-Za-z])/g)?.length ?? 0;
  return Math.max(1, pages);
}
