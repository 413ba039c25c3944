// Several models behind one server (--model-repository): each has its own
// ServerDeps (runtime, engine, tokenizer, templates, metrics) and its own
// instance of every route; a request goes to the one its body's `model` names.
import type { Context } from 'hono';
import { AggregatorRegistry } from 'prom-client';

import { readJson } from './body.js';
import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';

type Handler = (c: Context) => Response | Promise<Response>;

/** The model a request names, or a 404 that lists the served ones (missing model: the first). */
export function modelNamed(models: ServerDeps[], name: unknown): ServerDeps {
  if (name === undefined || name === null) return models[0];
  const found = models.find((m) => m.modelName === name);
  if (!found)
    throw new ApiError(404, `The model \`${String(name)}\` does not exist. This server serves ${models.map((m) => `\`${m.modelName}\``).join(', ')}.`, 'invalid_request_error', 'model', 'model_not_found');
  return found;
}

/**
 * A route per model, chosen by the JSON body's `model`. With one model it is that model's
 * handler itself, so a single-model server reads the body once, as it always did.
 */
export function byModel(models: ServerDeps[], make: (deps: ServerDeps) => Handler): Handler {
  if (models.length === 1) return make(models[0]);
  const handlers = new Map(models.map((m) => [m.modelName, make(m)]));
  return async (c: Context) => {
    const body = (await readJson(c)) as { model?: unknown } | null;  // the body is cached: the handler reads it again
    return handlers.get(modelNamed(models, typeof body === 'object' && body !== null ? body.model : undefined).modelName)!(c);
  };
}

/** Prometheus text of every model's metrics, each series labelled with its model_name. */
export async function allMetrics(models: ServerDeps[]): Promise<{ text: string; contentType: string }> {
  if (models.length === 1) return { text: await models[0].metrics.registry.metrics(), contentType: models[0].metrics.registry.contentType };
  const merged = AggregatorRegistry.aggregate(await Promise.all(models.map((m) => m.metrics.registry.getMetricsAsJSON())));
  return { text: await merged.metrics(), contentType: merged.contentType };
}
