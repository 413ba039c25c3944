import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../../native/binding.js';

/** Made by test/tokenizers/make_fixtures.py (see there to regenerate). */
export const TOKENIZERS_DIR = join(packageRoot(), 'test', 'fixtures', 'tokenizers');

export const TOKENIZER_FIXTURES = ['bytelevel-trained', 'bytelevel-ranked', 'bytelevel-gpt2', 'spbpe-legacy', 'spbpe-metaspace', 'cl100k'] as const;

export interface ExpectedLine {
  text: string;
  ids: number[];
  ids_special_as_text: number[];
  ids_with_special: number[];
  decoded: string;
  decoded_skip_special: string;
}

export function expectedLines(name: string): ExpectedLine[] {
  return JSON.parse(readFileSync(join(TOKENIZERS_DIR, `${name}.expected.json`), 'utf8')).lines;
}
