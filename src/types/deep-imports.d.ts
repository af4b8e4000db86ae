/**
 * Types for the single files Hapax imports from inside two packages instead of their index, which loads
 * every backend and client they have (about 60 ms of start-up for undici's alone). Both packages are
 * pinned to an exact version in package.json, since these paths are not part of their public API.
 */
declare module 'undici/lib/dispatcher/pool.js' {
  import { Pool } from 'undici';
  export default Pool;
}

declare module 'undici/lib/core/errors.js' {
  import { errors } from 'undici';
  export default errors;
}

declare module 'rate-limiter-flexible/lib/BurstyRateLimiter.js' {
  import { BurstyRateLimiter } from 'rate-limiter-flexible';
  export default BurstyRateLimiter;
}

declare module 'rate-limiter-flexible/lib/RateLimiterRes.js' {
  import { RateLimiterRes } from 'rate-limiter-flexible';
  export default RateLimiterRes;
}

declare module 'rate-limiter-flexible/lib/RateLimiterMemory.js' {
  import { RateLimiterMemory } from 'rate-limiter-flexible';
  export default RateLimiterMemory;
}

declare module 'rate-limiter-flexible/lib/RateLimiterCluster.js' {
  import { RateLimiterCluster, RateLimiterClusterMaster } from 'rate-limiter-flexible';
  const cluster: { RateLimiterCluster: typeof RateLimiterCluster; RateLimiterClusterMaster: typeof RateLimiterClusterMaster };
  export default cluster;
}

declare module 'rate-limiter-flexible/lib/RateLimiterRedis.js' {
  import { RateLimiterRedis } from 'rate-limiter-flexible';
  export default RateLimiterRedis;
}

declare module 'rate-limiter-flexible/lib/RateLimiterCompatibleAbstract.js' {
  import { RateLimiterCompatibleAbstract } from 'rate-limiter-flexible';
  export default RateLimiterCompatibleAbstract;
}

declare module 'undici/lib/dispatcher/client.js' {
  import { Client } from 'undici';
  export default Client;
}

declare module 'undici/lib/core/connect.js' {
  import { buildConnector } from 'undici';
  export default buildConnector;
}
