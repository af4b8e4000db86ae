/**
 * POST /v1/messages/count_tokens, Anthropic's Token Counting API (Claude Code and `messages.countTokens`).
 *
 * Resolved like /v1/messages. When the first candidate is an Anthropic-type provider, the Anthropic-type
 * candidates count it themselves (through the dispatcher: breakers, retries, failover); otherwise, or when
 * every one of them failed, the gateway counts locally. `X-Hapax-Token-Count` says which. A count is not a
 * completion: it is admitted and rate limited as a request and counted in the request totals, but charges
 * no tokens (nothing sets the request's usage).
 */
import { decodeCountTokensRequest } from '../../dialects/anthropic/count-tokens.ts';
import { type CountTokensAnswer } from '../../dialects/anthropic/shared.ts';
import type { ModelTarget, ProviderAdapter } from '../../providers/adapter.ts';
import { GatewayError } from '../../core/errors.ts';
import { countLocally } from '../../gateway/token-count.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { losslessRequest } from '../serve-chat.ts';

export const TOKEN_COUNT_HEADER = 'x-hapax-token-count';

export const countTokensHandler: Handler = async (request, reply, state) => {
  const body = decodeCountTokensRequest(request.body);
  const candidates = candidatesFor(state, body.model);
  const { adapters, dispatcher } = state.runtime;
  const canCount = (target: ModelTarget) => {
    const adapter = adapters.get(target.provider);
    return adapter?.countTokens !== undefined && (adapter.countsTokensFor?.(target.model) ?? true);
  };
  const forClaude = candidates.length > 0 && canCount(candidates[0]);
  if (forClaude) {
    // The client's own body and headers, as the lossless lane sends them (the provider's header policy applies).
    const asSent = losslessRequest(request, 'anthropic_messages');
    try {
      const result = await dispatcher.call(candidates.filter(canCount), attemptContext(request), (adapter, target, ctx) =>
        (adapter.countTokens as NonNullable<ProviderAdapter['countTokens']>)(asSent, target, ctx),
      );
      // Who counted, for the headers and the log; no usage, so no tokens are charged.
      setServedBy(reply, state, result, result.target.model);
      reply.header(TOKEN_COUNT_HEADER, 'provider');
      return result.value;
    } catch (error) {
      if (!worthCountingLocally(error)) throw error;
    }
  }
  const answer: CountTokensAnswer = { input_tokens: await countLocally(body, { claude: forClaude }) };
  reply.header(TOKEN_COUNT_HEADER, 'local');
  return answer;
};

/**
 * After every Anthropic candidate failed, a local count still answers; not when the request itself was
 * refused (the upstream's 400 is the client's to see) or the client has gone.
 */
function worthCountingLocally(error: unknown): boolean {
  return error instanceof GatewayError && error.type !== 'ValidationError' && error.status !== 499;
}
