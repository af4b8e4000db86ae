/**
 * The OS limit a gateway of many streams meets first: open files. Every open stream holds two descriptors (the
 * client's connection and the upstream's; over HTTP/2 upstream, one in a hundred), so the limit caps concurrent
 * streams at about half of it. Node raises its soft limit to the hard one at start; only the hard limit counts.
 */
import { readFileSync } from 'node:fs';

/** Below this many open files, the gateway says so at start. */
export const LOW_OPEN_FILES = 8192;

/** This process's open-files limit (Linux: /proc/self/limits); undefined where it cannot be read. */
export function openFilesLimit(source = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined) return undefined;
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/** The warning to log at start for this limit, if any. */
export function openFilesWarning(limit: number | undefined): string | undefined {
  if (limit === undefined || limit >= LOW_OPEN_FILES) return undefined;
  return `the open-files limit is ${limit}: each stream holds two (its client's and its upstream's), so about ${Math.floor(limit / 2)} can be open at once; raise it (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile) for more`;
}
