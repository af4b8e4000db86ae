/**
 * Adapter for Azure OpenAI: the OpenAI Chat Completions dialect (so same-dialect clients keep the lossless
 * lane) under Azure's paths and auth. A resource is reached through its deployments
 * (/openai/deployments/{deployment}/chat/completions?api-version=...) or the v1 API (/openai/v1/chat/completions,
 * the deployment as the model); the key goes in `api-key`, or a Microsoft Entra token as a bearer token.
 */
import type { AzureConfig } from '../config/schema.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse } from '../core/canonical.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';
import { OPENAI_CHAT_RELAY } from '../dialects/openai/relay.ts';
import type { AdapterInit, AttemptContext, ModelTarget } from './adapter.ts';
import { BearerToken } from './bearer-token.ts';
import { OpenAIAdapter } from './openai.ts';

/** The newest generally available data-plane api-version of the deployment paths. */
export const AZURE_DEFAULT_API_VERSION = '2024-10-21';

export class AzureOpenAIAdapter extends OpenAIAdapter {
  private readonly api: AzureConfig['api'];
  /** `?api-version=...` (or '' on v1 without one), made once. */
  private readonly versionQuery: string;
  private readonly deployments: Readonly<Record<string, string>>;
  private readonly entra?: BearerToken;
  /** The Entra token the next attempt carries; refreshed (for every request at once) before each attempt. */
  private token?: string;

  constructor(init: AdapterInit) {
    super(init, {
      // Required by the config; the endpoint is the resource's own (https://NAME.openai.azure.com).
      defaultBaseUrl: 'https://invalid.openai.azure.com',
      keyHeader: 'api-key',
      // Paths carry /openai; an endpoint written with it (or with /openai/v1) would double it.
      normalizeBaseUrl: (url) => url.replace(/\/openai(\/v1)?\/?$/, ''),
      relay: { dialect: OPENAI_CHAT_RELAY, clientHeaders: [] },
    });
    const azure = init.config.azure;
    this.api = azure?.api ?? 'deployments';
    const version = azure?.api_version ?? (this.api === 'deployments' ? AZURE_DEFAULT_API_VERSION : undefined);
    this.versionQuery = version ? `?api-version=${encodeURIComponent(version)}` : '';
    this.deployments = azure?.deployments ?? {};
    if (azure?.entra_token || azure?.entra_token_command) {
      this.entra = new BearerToken(init.name, { token: azure.entra_token, command: azure.entra_token_command });
    }
  }

  /** The target with its model replaced by its deployment (v1 takes the deployment as the model). */
  private deployed(target: ModelTarget): ModelTarget {
    const deployment = this.deployments[target.model];
    return deployment ? { ...target, model: deployment } : target;
  }

  private path(target: ModelTarget, operation: string): string {
    const base = this.api === 'v1' ? '/openai/v1' : `/openai/deployments/${encodeURIComponent(target.model)}`;
    return `${base}/${operation}${this.versionQuery}`;
  }

  protected override chatPath(target: ModelTarget): string {
    return this.path(target, 'chat/completions');
  }

  /** Azure's path, with the client's own query parameters after the api-version. */
  protected override relayPath(lossless: LosslessRequest, target: ModelTarget): string {
    const path = this.chatPath(target);
    if (!lossless.query) return path;
    return path + (path.includes('?') ? '&' : '?') + lossless.query.slice(1);
  }

  protected override embeddingsPath(target: ModelTarget): string {
    return this.path(target, 'embeddings');
  }

  protected override modelsPath(): string {
    return this.api === 'v1' ? `/openai/v1/models${this.versionQuery}` : `/openai/models${this.versionQuery}`;
  }

  protected override headers(target: ModelTarget, ctx: AttemptContext): string[] {
    const headers = super.headers(target, ctx);
    if (this.token) headers.push('authorization', `Bearer ${this.token}`);
    return headers;
  }

  private async refreshToken(): Promise<void> {
    if (this.entra) this.token = await this.entra.get();
  }

  override async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    await this.refreshToken();
    return super.chat(request, this.deployed(target), ctx);
  }

  override async *chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<ChatStreamEvent> {
    await this.refreshToken();
    yield* super.chatStream(request, this.deployed(target), ctx);
  }

  override async embeddings(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse> {
    await this.refreshToken();
    return super.embeddings(request, this.deployed(target), ctx);
  }

  override async listModels(ctx: AttemptContext): Promise<string[]> {
    await this.refreshToken();
    return super.listModels(ctx);
  }
}
