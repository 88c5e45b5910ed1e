/** Image decoding by content (PNG or JPEG signature), whatever the file is called. */
import type { Image } from './image.js';
import { decodeJpeg, isJpeg } from './jpeg.js';
import { decodePng, isPng } from './png.js';

export function decodeImage(bytes: Uint8Array, opts: { maxPixels?: number } = {}): Image {
  if (isPng(bytes)) return decodePng(bytes, opts);
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xd8) return decodeJpeg(bytes, opts);
  if (bytes.length === 0) throw new Error('empty file');
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(`unknown image format (not PNG or JPEG; starts with ${head})`);
}

export { isJpeg, isPng };
