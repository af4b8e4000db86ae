/** What both sides of the Anthropic Messages format use. */


export type Block = Record<string, unknown> & { type: string };

/** What Anthropic answers; extra fields the upstream sends are kept. */
export interface CountTokensAnswer {
  input_tokens: number;
  [field: string]: unknown;
}
