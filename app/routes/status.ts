import type { Context } from 'hono';

import type { ServerDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { allMetrics } from '../model-routing.js';

/** GET /v1/models: every served model. */
export function listModels(models: ServerDeps[]) {
  return function listModelsHandler(c: Context) {
    return c.json({ object: 'list', data: models.map(modelCard) });
  };
}

/** GET /v1/models/:model */
export function getModel(models: ServerDeps[]) {
  return function getModelHandler(c: Context) {
    const name = c.req.param('model');
    const deps = models.find((m) => m.modelName === name);
    if (!deps) throw new ApiError(404, `The model \`${name}\` does not exist.`, 'invalid_request_error', 'model', 'model_not_found');
    return c.json(modelCard(deps));
  };
}

function modelCard(deps: ServerDeps) {
  return { id: deps.modelName, object: 'model', created: deps.created, owned_by: 'tachyon', max_model_len: deps.maxModelLen };
}

/** GET /health: the process is alive. */
export function health() {
  return function healthHandler(c: Context) {
    return c.json({ status: 'ok' });
  };
}

/** GET /ready: the model is loaded, the engine runs and the server takes requests. */
export function ready(deps: ServerDeps) {
  return function readyHandler(c: Context) {
    if (!deps.state.ready || deps.state.draining) return c.json({ status: deps.state.draining ? 'draining' : 'loading' }, 503);
    return c.json({ status: 'ready', model: deps.modelName });
  };
}

/** GET /metrics (Prometheus text format; with several models each series carries model_name). */
export function metrics(models: ServerDeps[]) {
  return async function metricsHandler(c: Context) {
    const { text, contentType } = await allMetrics(models);
    return c.body(text, 200, { 'Content-Type': contentType });
  };
}
