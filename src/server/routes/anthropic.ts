/** The Anthropic-compatible API (/v1/messages). */
import { GatewayError } from '../../providers/errors.ts';
import type { Handler } from '../context.ts';

export const messagesHandler: Handler = async () => {
  throw new GatewayError('the Anthropic Messages API is not available yet', { status: 501, type: 'InternalError' });
};
