/**
 * Sends Google's OAuth token endpoint to a fake one, in this test process only: google-auth-library posts
 * service-account grants to https://oauth2.googleapis.com/token whatever the key file says, through node's
 * https module (gaxios uses node-fetch on Node). Any other request to a Google host fails, so a test never
 * reaches the network by accident.
 */
import http from 'node:http';
import https from 'node:https';
import { GOOGLE_TOKEN_URL } from '../fakes/vertex.ts';

const GOOGLE_HOST = /(^|\.)(googleapis\.com|google\.internal)$|^169\.254\.169\.254$/;

export function routeGoogleToken(fakeTokenUrl: string): { close(): void } {
  const real = https.request;
  const routed = function (this: unknown, ...args: unknown[]) {
    const [first, second, third] = args;
    const url = first instanceof URL ? first : typeof first === 'string' ? new URL(first) : undefined;
    if (url && url.origin + url.pathname === GOOGLE_TOKEN_URL) {
      const { agent: _agent, ...options } = (typeof second === 'object' && second !== null ? second : {}) as https.RequestOptions;
      const callback = (typeof second === 'function' ? second : third) as ((res: http.IncomingMessage) => void) | undefined;
      return http.request(new URL(fakeTokenUrl), options, callback);
    }
    const host = url?.hostname ?? (first as https.RequestOptions | undefined)?.hostname ?? (first as https.RequestOptions | undefined)?.host ?? '';
    if (GOOGLE_HOST.test(String(host))) throw new Error(`test tried to reach ${host}`);
    return (real as (...a: unknown[]) => http.ClientRequest).apply(this, args);
  };
  https.request = routed as typeof https.request;
  return { close: () => void (https.request = real) };
}
