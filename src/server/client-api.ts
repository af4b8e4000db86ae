/**
 * One descriptor per client API (native, OpenAI, Anthropic, Ollama, and the operations endpoints in the route
 * table): its standard routes, and for each handler its methods, who needs a key, whether it depends on
 * providers, the error dialect, the function that serves it and its OpenAPI operation, whose request schema is
 * the zod schema that validates the body. The route table (gateway/runtime.ts), health, the error format and
 * the OpenAPI document are all derived from these declarations: adding a client API is one new module.
 */
import type { z } from 'zod';
import type { HandlerName } from '../config/schema.ts';
import type { KeyPolicy } from '../gateway/runtime.ts';
import type { Handler } from './context.ts';
import type { ErrorDialect } from './errors.ts';

export type { HandlerName };

/** A request body as the OpenAPI document shows it: the very schema the handler validates with. */
export interface DocumentedRequest {
  /** The component name under #/components/schemas. */
  id: string;
  schema: z.ZodType;
  description: string;
  /** A body the operation accepts; test/openapi.test.ts sends it. */
  example: unknown;
}

/** One documented answer: its JSON component, and the component each event of a stream carries. */
export interface DocumentedAnswer {
  description: string;
  json?: string;
  /** Server-Sent Events, each `data:` carrying this component. */
  sse?: string;
  /** Newline-delimited JSON, each line this component. */
  ndjson?: string;
  /** A plain-text answer of this content type (Prometheus' exposition). */
  text?: string;
}

export interface DocumentedOperation {
  tag: string;
  summary: string;
  description?: string;
  request?: DocumentedRequest;
  /** The answers other than errors, by status. */
  responses: Readonly<Record<number, DocumentedAnswer>>;
  /** Error statuses this operation documents; their bodies are in the API's error dialect. */
  errors: readonly number[];
  /** The methods this operation documents on its path; all the handler's when absent. */
  methods?: readonly string[];
  /** The `{name}` parts of a subroute's path. */
  pathParameters?: ReadonlyArray<{ name: string; description: string; example: string }>;
}

export interface HandlerDeclaration {
  methods: readonly string[];
  /** Who presents a client key when auth is on: every caller, none (health), or as `metrics.auth` says. */
  key: KeyPolicy;
  /** Probes and scrapes rather than client traffic: not rate limited, counted in usage, traced or shown in the console. */
  operational: boolean;
  /** Healthy only while a provider it can use is (health's `services`). */
  usesProviders: boolean;
  serve: Handler;
  /** Also serves the paths below its routes' own (`/v1/responses/{id}`). */
  subpaths?: boolean;
  /** The operations of those paths, each below the route's path (`/{response_id}`). */
  subroutes?: ReadonlyArray<{ path: string; method: string; openapi: DocumentedOperation }>;
  openapi?: DocumentedOperation;
}

export interface ClientApi<H extends Partial<Record<HandlerName, HandlerDeclaration>> = Partial<Record<HandlerName, HandlerDeclaration>>> {
  name: string;
  errorDialect: ErrorDialect;
  handlers: H;
  /** The standard paths, each with its handler (and a summary of its own when two paths share one). */
  routes: ReadonlyArray<{ path: string; handler: keyof H & HandlerName; summary?: string }>;
}

/** Any client API, as the registry and the OpenAPI document read them. */
export interface DeclaredApi {
  readonly name: string;
  readonly errorDialect: ErrorDialect;
  readonly handlers: Readonly<Partial<Record<HandlerName, HandlerDeclaration>>>;
  readonly routes: ReadonlyArray<{ readonly path: string; readonly handler: HandlerName; readonly summary?: string }>;
}

/** Keeps the handler names of a declaration in its type, so the registry can check that every name is declared once. */
export function defineApi<const H extends Partial<Record<HandlerName, HandlerDeclaration>>>(api: ClientApi<H>): ClientApi<H> {
  return api;
}
