/** SHA-256 of files (what generator runs and caches record to recognise their tokenizer). */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** SHA-256 (hex) of a file. */
export async function fileSha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}
