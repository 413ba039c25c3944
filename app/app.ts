import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';

import { anthropicErrorBody, isAnthropicPath } from './anthropic/errors.js';
import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';
import { consoleLog, type Log } from './logger.js';
import { isKservePath, kserveErrorBody, kserveRoutes } from './kserve/routes.js';
import { byModel } from './model-routing.js';
import { apiKeyAuth, assignRequestId, countRequests, limitBody, refuseWhileDraining } from './middleware.js';
import { accessLog, loggableMessage, requestLogOf } from './request-log.js';
import { chatCompletions } from './routes/chat.js';
import { completions } from './routes/completions.js';
import { countTokens, messages } from './routes/messages.js';
import { createResponse, deleteResponse, getResponse, listInputItems } from './routes/responses.js';
import { getModel, health, listModels, metrics, ready } from './routes/status.js';
import { detokenize, tokenize } from './routes/tokenize.js';
import { uiRoutes } from './routes/ui.js';

/**
 * The HTTP app: OpenAI-compatible routes, Anthropic's Messages API and the KServe v2 protocol, over the engine. Every response
 * carries x-request-id; every request gets one access line (app/request-log.ts).
 */
export function createApp(deps: ServerDeps, log: Log = consoleLog(deps.config.logLevel), models: ServerDeps[] = [deps]): Hono {
  // Several models (--model-repository): deps is the first; the server-wide parts (config, state,
  // stored responses, access log) are its, and every model route goes to the model its body names.
  const app = new Hono();
  app.use('*', assignRequestId());
  app.use('*', accessLog(deps, log));
  app.use('*', countRequests(deps));
  if (deps.config.corsOrigins.length > 0) {
    const origins = deps.config.corsOrigins;
    app.use('*', cors({ origin: origins.includes('*') ? '*' : origins, exposeHeaders: ['x-request-id'] }));
  }
  app.use(
    '*',
    limitBody(deps.config.maxBodyBytes),
  );
  app.get('/health', health());
  app.get('/ready', ready(deps));
  app.get('/metrics', metrics(models));

  const auth = apiKeyAuth(deps.config.apiKeys);
  for (const path of ['/v1/*', '/tokenize', '/detokenize']) app.use(path, auth);
  app.get('/v1/models', listModels(models));
  app.get('/v1/models/:model', getModel(models));
  const draining = refuseWhileDraining(deps);
  app.post('/v1/chat/completions', draining, byModel(models, chatCompletions));
  app.post('/v1/completions', draining, byModel(models, completions));
  app.post('/v1/responses', draining, byModel(models, createResponse));
  app.get('/v1/responses/:id', getResponse(deps));
  app.delete('/v1/responses/:id', deleteResponse(deps));
  app.get('/v1/responses/:id/input_items', listInputItems(deps));
  app.post('/v1/messages', draining, byModel(models, messages));
  app.post('/v1/messages/count_tokens', byModel(models, countTokens));
  app.post('/tokenize', byModel(models, tokenize));
  app.post('/detokenize', byModel(models, detokenize));
  kserveRoutes(app, models);
  if (deps.config.ui) uiRoutes(app);

  // Anthropic's paths answer in Anthropic's error shape, KServe's (/v2) in KServe's, the rest in OpenAI's.
  const errorBody = (c: Context, e: ApiError) =>
    isAnthropicPath(c.req.path) ? anthropicErrorBody(e) : isKservePath(c.req.path) ? kserveErrorBody(e) : e.body();
  app.notFound((c) => c.json(errorBody(c, new ApiError(404, `no route ${c.req.method} ${c.req.path}`, 'invalid_request_error', null, 'not_found')), 404));
  // Client errors are the client's: debug here (the access line, at info, names their code).
  // Server errors are logged with their stack; every line carries the request id.
  app.onError((err, c) => {
    const rlog = requestLogOf(c, log);
    const where = `${c.req.method} ${c.req.path}`;
    if (err instanceof ApiError) {
      const detail = { status: err.status, code: err.code, param: err.param };
      if (err.status < 500) rlog.debug(`${where}: ${err.status} ${loggableMessage(err, deps.config.logRequests)}`, detail);
      else if (err.status === 503) rlog.warn(`${where}: ${err.status} ${err.message}`, detail);
      else rlog.error(`${where}: ${err.status} ${err.message}`, { ...detail, err });
      return c.json(errorBody(c, err), err.status, err.headers);
    }
    if (err instanceof HTTPException && err.status < 500) {
      const e = new ApiError(err.status as 400, err.message || 'bad request');
      rlog.debug(`${where}: ${e.status} ${e.message}`, { status: e.status });
      return c.json(errorBody(c, e), e.status);
    }
    rlog.error(`internal error on ${where}`, err);
    return c.json(errorBody(c, new ApiError(500, 'internal server error', 'server_error', null, 'internal_error')), 500);
  });
  return app;
}
