import type { ServerDeps } from '../deps.js';
import { ApiError } from '../errors.js';

export function checkModel(deps: ServerDeps, model: string | null | undefined): void {
  if (model != null && model !== deps.modelName)
    throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${deps.modelName}\`.`, 'invalid_request_error', 'model', 'model_not_found');
}
