/** Hapax as a library: start a gateway from a config inside your own process. */
export { defaultConfig } from './config/default.ts';
export { ConfigError } from './config/errors.ts';
export { loadConfigFile, parseConfig, type LoadedConfig } from './config/load.ts';
export type { HapaxConfig } from './config/schema.ts';
export { startGateway, type Gateway, type StartOptions } from './server/start.ts';
