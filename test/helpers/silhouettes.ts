/**
 * Fashion-MNIST-like test images for the 32x32 tokenizer overfit tests: filled ellipse silhouettes
 * whose centre and radii depend on the index, with a vertical shading gradient and a dark stripe,
 * on a black background; values in [0, 1], [n, 32, 32] row-major.
 */
export function silhouettes32(n: number): Float32Array {
  const size = 32;
  const out = new Float32Array(n * size * size);
  for (let k = 0; k < n; k++) {
    const cx = 16 + ((k * 5) % 7) - 3;
    const cy = 15 + ((k * 3) % 5) - 2;
    const rx = 6 + ((k * 7) % 6);
    const ry = 9 + ((k * 4) % 5);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        let v = e <= 1 ? 0.45 + 0.5 * (y / size) : 0;
        if (e <= 1 && Math.abs(y - cy - (k - 1.5) * 3) < 1.5) v = 0.15;
        out[k * size * size + y * size + x] = v;
      }
    }
  }
  return out;
}

/** MSE of the best constant image (the per-pixel mean) over n images of `per` pixels each. */
export function meanImageMse(data: Float32Array, n: number, per: number): number {
  let mse = 0;
  for (let p = 0; p < per; p++) {
    let m = 0;
    for (let k = 0; k < n; k++) m += data[k * per + p]!;
    m /= n;
    for (let k = 0; k < n; k++) mse += (data[k * per + p]! - m) ** 2 / (n * per);
  }
  return mse;
}
