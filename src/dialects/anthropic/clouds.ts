/**
 * The Anthropic Messages body as the clouds take it (Bedrock's InvokeModel, Vertex AI's rawPredict): the model
 * goes in the URL, not the body, and the API version is a body field (`anthropic_version`) instead of a header.
 * Every other field stays as the client (or the encoder) wrote it.
 */

export interface CloudBodyOptions {
  /** The body's anthropic_version: `bedrock-2023-05-31`, `vertex-2023-10-16`. */
  version: string;
  /** Bedrock chooses streaming by the path and refuses a `stream` field; Vertex keeps it. */
  keepStream: boolean;
  /** Bedrock takes betas in the body (`anthropic_beta`), not as a header. */
  betas?: string;
}

export function cloudMessagesBody(body: Readonly<Record<string, unknown>>, opts: CloudBodyOptions): Record<string, unknown> {
  const { model: _model, stream, ...rest } = body;
  const out: Record<string, unknown> = { anthropic_version: opts.version, ...rest };
  if (opts.keepStream && stream !== undefined) out.stream = stream;
  if (opts.betas !== undefined && out.anthropic_beta === undefined) {
    const names = opts.betas
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    if (names.length > 0) out.anthropic_beta = names;
  }
  return out;
}

