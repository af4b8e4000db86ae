/**
 * Known OpenAI-compatible hosts, as data: where each lives, whether it wants a key, and what it does
 * differently from OpenAI. `preset: groq` on an `openai_compatible` provider fills in what the config leaves
 * out (base_url, headers); the OpenAI adapter applies the quirks when it translates a request (the lossless lane
 * passes the client's body as written). Each quirk is taken from the host's own API documentation.
 */

export interface PresetQuirks {
  /**
   * How a reasoning effort is asked for: OpenAI's `reasoning_effort` (the default), OpenRouter's
   * `reasoning: {effort}` object, or not at all (`none`: reported as dropped).
   */
  reasoning?: 'reasoning_effort' | 'reasoning_object' | 'none';
  /** Request fields the host names differently: OpenAI's name → the host's. */
  rename?: Readonly<Record<string, string>>;
  /**
   * Request fields the host refuses with a 400: left out and reported as dropped. `messages.name` is the
   * `name` of chat messages.
   */
  refuses?: readonly string[];
}

export interface Preset {
  /** The host's product name, for docs and `hapax validate`. */
  title: string;
  base_url: string;
  /** The host needs an API key (local servers do not). */
  needs_key: boolean;
  headers?: Readonly<Record<string, string>>;
  quirks?: PresetQuirks;
}

export const PRESETS = {
  groq: {
    title: 'Groq',
    base_url: 'https://api.groq.com/openai/v1',
    needs_key: true,
    // Groq's OpenAI-compatibility page: messages[].name (with logprobs, logit_bias, n > 1) is a 400.
    quirks: { refuses: ['messages.name'] },
  },
  mistral: {
    title: 'Mistral AI',
    base_url: 'https://api.mistral.ai/v1',
    needs_key: true,
    // Mistral's chat API calls the seed random_seed and has no reasoning_effort.
    quirks: { rename: { seed: 'random_seed' }, reasoning: 'none' },
  },
  deepseek: {
    title: 'DeepSeek',
    base_url: 'https://api.deepseek.com/v1',
    needs_key: true,
    // deepseek-reasoner answers with reasoning_content (read like every reasoning_content); it thinks by model
    // choice, not by a reasoning_effort setting. Cached prompt tokens come as prompt_cache_hit_tokens (read too).
    quirks: { reasoning: 'none' },
  },
  together: {
    title: 'Together AI',
    base_url: 'https://api.together.xyz/v1',
    needs_key: true,
  },
  openrouter: {
    title: 'OpenRouter',
    base_url: 'https://openrouter.ai/api/v1',
    needs_key: true,
    // OpenRouter's unified reasoning setting is an object; its answers carry the text in `reasoning` (read too).
    quirks: { reasoning: 'reasoning_object' },
  },
  fireworks: {
    title: 'Fireworks AI',
    base_url: 'https://api.fireworks.ai/inference/v1',
    needs_key: true,
  },
  vllm: {
    title: 'vLLM (local)',
    base_url: 'http://localhost:8000/v1',
    needs_key: false,
  },
  lmstudio: {
    title: 'LM Studio (local)',
    base_url: 'http://localhost:1234/v1',
    needs_key: false,
  },
} as const satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as [PresetName, ...PresetName[]];

export const presetOf = (name: PresetName | undefined): Preset | undefined => (name ? PRESETS[name] : undefined);
