/** Optional comparison with Portkey's gateway (not a dependency); see docs/performance.md. */
import type { ChildProcess } from 'node:child_process';

export async function startPortkey(_dir: string, _upstreamPort: number, _node: string): Promise<{ child: ChildProcess; port: number }> {
  throw new Error('not implemented yet');
}
