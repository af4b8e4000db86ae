/**
 * The deployment files, checked without Docker or Kubernetes: every YAML file parses and says what it
 * must (probes, ports, mounts), every path they and the Dockerfile refer to exists, and the Hapax
 * configs they ship validate.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import { ROOT } from './helpers/serve.ts';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const yamlOf = (path: string): any => parse(read(path));

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('builds in one stage and runs from another, as a non-root user', () => {
    const stages = lines.filter((l) => l.startsWith('FROM '));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]).toMatch(/ AS build$/);
    const runtime = lines.slice(lines.lastIndexOf(stages.at(-1) as string));
    const user = runtime.find((l) => l.startsWith('USER '));
    expect(user).toBeDefined();
    expect(user).not.toMatch(/USER (root|0)\b/);
  });

  it('copies only files that exist', () => {
    const copies = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const parts = copy.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) expect(existsSync(join(ROOT, source)), `${copy}: ${source}`).toBe(true);
    }
  });

  it('ships a default config at /app/config.yaml, honours CONFIG_PATH, and checks health', () => {
    expect(text).toMatch(/COPY deploy\/config\.yaml \.\/config\.yaml/);
    expect(lines.find((l) => l.startsWith('WORKDIR'))).toBe('WORKDIR /app');
    expect(text).toMatch(/CONFIG_PATH=\/app\/config\.yaml/);
    expect(lines.find((l) => l.startsWith('HEALTHCHECK'))).toMatch(/\/health\/live/);
    expect(lines.find((l) => l.startsWith('EXPOSE'))).toBe('EXPOSE 8080');
    expect(lines.at(-2)).toBe('ENTRYPOINT ["node", "bin/hapax.js"]');
    expect(lines.at(-1)).toBe('CMD ["serve"]');
    // The runtime needs what the package ships: the compiled code, the launcher, the console's files.
    for (const path of ['bin/hapax.js', 'console', 'package.json']) expect(text).toContain(`COPY ${path.split('/')[0]}`);
  });

  it('ships configs that validate', () => {
    const { config } = parseConfig(read('deploy/config.yaml'), 'deploy/config.yaml', {});
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(Object.keys(config.providers)).toEqual(['mock']);
  });
});

describe('docker-compose.yml', () => {
  const compose = yamlOf('docker-compose.yml');

  it('runs Hapax, Redis, Prometheus and Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['grafana', 'hapax', 'prometheus', 'redis']);
    expect(compose.services.hapax.build).toBe('.');
    expect(compose.services.hapax.ports).toContain('8080:8080');
    expect(compose.services.hapax.environment.CONFIG_PATH).toBe('/etc/hapax/config.yaml');
    expect(compose.services.hapax.depends_on.redis.condition).toBe('service_healthy');
    // Managed keys live only in Redis: the compose file keeps them across a restart.
    expect(compose.services.redis.command.join(' ')).toMatch(/--appendonly yes/);
    expect(compose.services.redis.volumes).toContain('redis-data:/data');
    expect(Object.keys(compose.volumes)).toContain('redis-data');
  });

  it('mounts files and directories that exist', () => {
    for (const [name, service] of Object.entries<{ volumes?: string[] }>(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0];
        if (!source.startsWith('.')) continue; // a named volume
        expect(existsSync(join(ROOT, source)), `${name}: ${volume}`).toBe(true);
      }
    }
    expect(compose.services.prometheus.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  });

  it('gives Hapax a config that validates and uses Redis', () => {
    const { config } = parseConfig(read('deploy/compose/config.yaml'), 'deploy/compose/config.yaml', {});
    expect((config.state as { redis_url?: string }).redis_url).toBe('redis://redis:6379');
  });

  it('provisions Grafana with the Prometheus data source and the Hapax dashboard', () => {
    const datasources = yamlOf('deploy/grafana/provisioning/datasources/prometheus.yml');
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true });
    const dashboards = yamlOf('deploy/grafana/provisioning/dashboards/hapax.yml');
    const path = dashboards.providers[0].options.path;
    expect(compose.services.grafana.volumes).toContain(`./deploy/grafana/hapax.json:${path}/hapax.json:ro`);
    expect(compose.services.grafana.volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(JSON.parse(read('deploy/grafana/hapax.json')).panels.length).toBeGreaterThan(0);
  });
});

describe('Kubernetes manifests', () => {
  const dir = 'deploy/k8s';
  const docs: any[] = readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(read(join(dir, f))).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS();
    }));
  const byKind = (kind: string) => docs.find((d) => d.kind === kind && d.metadata?.name !== 'redis');

  it('lists every manifest in the kustomization', () => {
    const kustomization = byKind('Kustomization');
    const files = readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it('probes readiness on /health/ready and liveness on a cheap endpoint, never provider health', () => {
    const deployment = byKind('Deployment');
    const [container] = deployment.spec.template.spec.containers;
    expect(container.readinessProbe.httpGet.path).toBe('/health/ready');
    expect(container.livenessProbe.httpGet.path).toBe('/health/live');
    expect(container.ports[0]).toMatchObject({ name: 'http', containerPort: 8080 });
    expect(container.env.find((e: { name: string }) => e.name === 'CONFIG_PATH').value).toBe('/etc/hapax/config.yaml');
    expect(deployment.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    // The drain (shutdown_timeout 30 s) and the preStop pause fit in the grace period.
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(35);
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  });

  it('mounts the ConfigMap as a directory, so updates reach the pod', () => {
    const deployment = byKind('Deployment');
    const [container] = deployment.spec.template.spec.containers;
    const mount = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/etc/hapax');
    expect(mount.subPath).toBeUndefined();
    const volume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
    expect(volume.configMap.name).toBe(byKind('ConfigMap').metadata.name);
  });

  it('ships a config that validates, with or without the provider key', () => {
    const text = byKind('ConfigMap').data['config.yaml'];
    expect(Object.keys(parseConfig(text, 'configmap', { OPENAI_API_KEY: 'sk-test' }).config.providers)).toEqual(['openai', 'mock']);
    expect(parseConfig(text, 'configmap', {}).config.server.port).toBe(8080);
  });

  it('shares state in Redis across its replicas: the Redis it ships, or the redis-url of the Secret', () => {
    const text = byKind('ConfigMap').data['config.yaml'];
    expect(byKind('Deployment').spec.replicas).toBeGreaterThan(1);
    expect(parseConfig(text, 'configmap', {}).config.state.redis_url).toBe('redis://redis:6379');
    expect(parseConfig(text, 'configmap', { REDIS_URL: 'rediss://managed.example:6380' }).config.state.redis_url).toBe('rediss://managed.example:6380');
    const redisService = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'redis');
    const redis = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'redis');
    expect(redisService.spec.selector).toEqual(redis.spec.template.metadata.labels);
    expect(redisService.spec.ports[0].port).toBe(6379);
    const env = byKind('Deployment').spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'REDIS_URL');
    expect(env.valueFrom.secretKeyRef).toMatchObject({ name: 'hapax-secrets', key: 'redis-url' });
  });

  it('exposes the pods through a Service and scales them with an HPA', () => {
    const deployment = byKind('Deployment');
    const service = byKind('Service');
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(service.spec.ports[0].targetPort).toBe('http');
    const hpa = byKind('HorizontalPodAutoscaler');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
  });
});
