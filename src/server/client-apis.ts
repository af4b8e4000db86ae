/**
 * Every client API Hapax serves, and what is derived from their declarations: each handler's declaration
 * (type-checked to cover every handler name a config may use, exactly once), and the route table's view of them.
 */
import type { HandlerName } from '../config/schema.ts';
import type { RouteDeclarations, RouteKind } from '../gateway/runtime.ts';
import type { ClientApi, DeclaredApi, HandlerDeclaration } from './client-api.ts';
import type { ErrorDialect } from './errors.ts';
import { anthropicApi } from './routes/anthropic.ts';
import { operationsApi } from './routes/health.ts';
import { nativeApi } from './routes/native.ts';
import { ollamaApi } from './routes/ollama.ts';
import { openaiApi } from './routes/openai.ts';
import { responsesApi } from './routes/responses.ts';

export const CLIENT_APIS: readonly DeclaredApi[] = [nativeApi, openaiApi, responsesApi, anthropicApi, ollamaApi, operationsApi];

/** A handler's declaration with the error dialect of the API that declares it. */
export type DeclaredHandler = HandlerDeclaration & { errorDialect: ErrorDialect; api: string };

const withDialect = <H extends Partial<Record<HandlerName, HandlerDeclaration>>>(api: ClientApi<H>) =>
  Object.fromEntries(Object.entries(api.handlers).map(([name, declared]) => [name, { ...declared, errorDialect: api.errorDialect, api: api.name }])) as {
    [K in keyof H]: DeclaredHandler;
  };

/** Every handler name, declared once: a name missing here (or declared twice over) fails the type check. */
export const HANDLER_DECLARATIONS = {
  ...withDialect(nativeApi),
  ...withDialect(openaiApi),
  ...withDialect(responsesApi),
  ...withDialect(anthropicApi),
  ...withDialect(ollamaApi),
  ...withDialect(operationsApi),
} satisfies Record<HandlerName, DeclaredHandler>;

/** What the route table reads: the standard paths and each handler's kind. */
export const ROUTE_DECLARATIONS: RouteDeclarations = {
  standard: CLIENT_APIS.flatMap((api) => api.routes.map(({ path, handler }) => ({ path, handler }))),
  kinds: Object.fromEntries(
    Object.entries(HANDLER_DECLARATIONS).map(([name, { methods, key, operational, usesProviders, errorDialect, subpaths }]) => [name, { methods, key, operational, usesProviders, errorDialect, subpaths } satisfies RouteKind]),
  ) as Record<HandlerName, RouteKind>,
};
