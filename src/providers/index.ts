/** One adapter per provider dialect; adding a provider is one file and one line here. */
import type { ProviderType } from '../config/schema.ts';
import type { AdapterInit, ProviderAdapter } from './adapter.ts';
import { AnthropicAdapter } from './anthropic.ts';
import { AzureOpenAIAdapter } from './azure-openai.ts';
import { BedrockAdapter } from './bedrock.ts';
import { GeminiAdapter } from './gemini.ts';
import { MockAdapter } from './mock.ts';
import { OllamaAdapter } from './ollama.ts';
import { OpenAIAdapter } from './openai.ts';
import { VertexAdapter } from './vertex.ts';

const ADAPTERS: Partial<Record<ProviderType, new (init: AdapterInit) => ProviderAdapter>> = {
  openai: OpenAIAdapter,
  openai_compatible: OpenAIAdapter,
  anthropic: AnthropicAdapter,
  ollama: OllamaAdapter,
  mock: MockAdapter,
  azure_openai: AzureOpenAIAdapter,
  gemini: GeminiAdapter,
  bedrock: BedrockAdapter,
  vertex: VertexAdapter,
};

export function createAdapter(init: AdapterInit): ProviderAdapter {
  const Adapter = ADAPTERS[init.config.type];
  if (!Adapter) throw new Error(`no adapter for provider type ${init.config.type}`);
  return new Adapter(init);
}
