/**
 * AWS's binary event-stream framing (application/vnd.amazon.eventstream), as Bedrock streams answers: length-
 * prefixed messages with typed headers and CRC32 checksums, split and checked by the SDK's own codec. A message
 * is an event (`:event-type`, a JSON payload) or an exception (`:exception-type`), which ends the stream.
 */
import { EventStreamCodec, getChunkedStream } from '@smithy/core/event-streams';
import { UpstreamError, type UpstreamFailureKind } from '../core/errors.ts';

const codec = new EventStreamCodec(
  (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  (text: string) => Buffer.from(text, 'utf8'),
);

/** Bedrock's stream exceptions (ConverseStream and InvokeModelWithResponseStream share them). */
const EXCEPTION_KINDS: Record<string, UpstreamFailureKind> = {
  throttlingException: 'rate_limited',
  serviceUnavailableException: 'overloaded',
  modelStreamErrorException: 'server',
  internalServerException: 'server',
  modelTimeoutException: 'timeout',
  validationException: 'client',
  accessDeniedException: 'auth',
};

export interface AwsStreamEvent {
  type: string;
  /** The payload as its JSON text. */
  payload: string;
}

/**
 * The events of an event-stream body, in order. An exception message or a broken frame throws UpstreamError
 * (the exception's kind decides failover, as the same error would as a status before the stream began).
 */
export async function* awsEvents(provider: string, body: AsyncIterable<Uint8Array>): AsyncGenerator<AwsStreamEvent> {
  const iterator = getChunkedStream(body)[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await iterator.next();
    } catch (error) {
      // The splitter's own complaint (a truncated message: a plain Error, it has no code) is a protocol fault;
      // a transport fault passes through to the caller's mapping.
      if (error instanceof Error && /event message/i.test(error.message)) throw new UpstreamError(provider, 'protocol', `${provider} stream broke off mid-message`, { cause: error });
      throw error;
    }
    if (next.done) return;
    let message;
    try {
      message = codec.decode(next.value);
    } catch (error) {
      throw new UpstreamError(provider, 'protocol', `${provider} sent a malformed event-stream message`, { cause: error });
    }
    const header = (name: string) => {
      const value = message.headers[name];
      return value?.type === 'string' ? value.value : undefined;
    };
    const payload = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString('utf8');
    const messageType = header(':message-type');
    if (messageType === 'event') {
      yield { type: header(':event-type') ?? '', payload };
      continue;
    }
    const exception = header(':exception-type') ?? header(':error-code') ?? 'unknown';
    let upstreamMessage = header(':error-message');
    try {
      const parsed = JSON.parse(payload) as { message?: unknown; Message?: unknown };
      const text = parsed.message ?? parsed.Message;
      if (typeof text === 'string') upstreamMessage = text;
    } catch {
      // no JSON payload: the header message (if any) stands
    }
    throw new UpstreamError(provider, EXCEPTION_KINDS[exception] ?? 'server', `${provider} reported ${exception} mid-stream`, { upstreamMessage });
  }
}
