import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensorsHeader, type TensorInfo } from './safetensors.js';

export interface CheckpointTensor extends TensorInfo {
  /** Index into Checkpoint.files. */
  file: number;
}

export interface Checkpoint {
  files: string[];
  tensors: CheckpointTensor[];
}

function shardFiles(modelDir: string): string[] {
  const index = join(modelDir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch {
      throw new Error(`${index} is not valid JSON`);
    }
    if (typeof weightMap !== 'object' || weightMap === null) throw new Error(`${index} has no weight_map`);
    return [...new Set(Object.values(weightMap))].sort().map((f) => join(modelDir, f));
  }
  const files = readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new Error(`${modelDir} holds no .safetensors file`);
  return files.map((f) => join(modelDir, f));
}

/** Lists every tensor of a HF checkpoint directory, one or more safetensors shards. */
export function readCheckpoint(modelDir: string): Checkpoint {
  const files = shardFiles(modelDir);
  const tensors: CheckpointTensor[] = [];
  const seen = new Map<string, string>();
  files.forEach((path, file) => {
    for (const t of readSafetensorsHeader(path).tensors.values()) {
      if (seen.has(t.name)) throw new Error(`tensor ${t.name} appears in both ${seen.get(t.name)} and ${path}`);
      seen.set(t.name, path);
      tensors.push({ ...t, file });
    }
  });
  return { files, tensors };
}
