/**
 * Winograd F(2x2, 3x3) convolution kernels (3x3 kernels, stride 1, dilation 1, groups 1): the
 * output is cut into 2x2 tiles, and each tile is
 *   Y = A^T [ U (.) V ] A,   U = G g G^T (4x4 per filter),   V = B^T d B (4x4 per input patch d)
 * so the 36 multiplies of a tile's direct convolution become 16, done as 16 independent GEMMs
 * over channels: M[e] = U[e] (Cout x C) @ V[e] (C x T) for the 16 elements e of the 4x4 transforms
 * and T tiles. The kernels here are the transforms; the GEMMs run on the matmul kernels.
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * The weight gradient follows from the same identity: dg = G^T [ sum_t (A dY_t A^T) (.) V_t ] G.
 *
 * Layouts (element e = 4 * row + column of the 4x4 transform; tile t = (n * th + ty) * tw + tx
 * over th x tw tiles per image):
 *   V [16, C, T]   input transform (inputTransformKernel)
 *   U [16, Cout, C] weight transform; flipped: U' [16, C, Cout] of the kernel rotated by 180
 *                   degrees with the channels swapped (the input gradient is a convolution of the
 *                   output gradient with it: weightTransformKernel with `flip`)
 *   M [16, Cout, T] product, to the output by outputTransformKernel (+ bias)
 *   Z [16, T, Cout] output-gradient transform A dY A^T (gradOutputTransformKernel)
 *   D [16, C, Cout] = V[e] @ Z[e], to the weight gradient by weightGradTransformKernel.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';

export const WINOGRAD_WG = 64;

const HEAD = `@compute @workgroup_size(${WINOGRAD_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let gid = linear_wg(wid, nwg) * ${WINOGRAD_WG}u + lid.x;`;

/** WGSL computing the 4 x 4 `out{r}{c}` = B^T d B from `d{r}{c}` (d: a 4 x 4 patch). */
function inputTransformWgsl(): string {
  const L: string[] = [];
  // Columns: t = B^T d (rows combined), then rows: out = t B.
  for (let c = 0; c < 4; c++) {
    L.push(`let t0${c} = d0${c} - d2${c}; let t1${c} = d1${c} + d2${c}; let t2${c} = d2${c} - d1${c}; let t3${c} = d1${c} - d3${c};`);
  }
  for (let r = 0; r < 4; r++) {
    L.push(`let o${r}0 = t${r}0 - t${r}2; let o${r}1 = t${r}1 + t${r}2; let o${r}2 = t${r}2 - t${r}1; let o${r}3 = t${r}1 - t${r}3;`);
  }
  return L.join('\n  ');
}

/**
 * x [N, C, H, W] -> V [16, C, T]: one invocation per (channel, tile) reads the 4 x 4 patch at
 * (2 ty - ph, 2 tx - pw) (zero outside the image) and writes its 16 transformed values.
 */
export const winogradInputKernel = defineKernel({
  name: 'winograd',
  key: () => 'input',
  signature: () => ({
    params: { C: 'u32', H: 'u32', W: 'u32', ph: 'u32', pw: 'u32', th: 'u32', tw: 'u32', T: 'u32', x_off: 'u32' },
    bindings: { x: read(), V: rw() },
  }),
  body: () => `
${HEAD}
  let T = P.T;
  if (gid >= P.C * T) { return; }
  let c = gid / T;
  let t = gid % T;
  let perImg = P.th * P.tw;
  let n = t / perImg;
  let r = t % perImg;
  let h0 = i32((r / P.tw) * 2u) - i32(P.ph);
  let w0 = i32((r % P.tw) * 2u) - i32(P.pw);
  let H = i32(P.H);
  let W = i32(P.W);
  let base = P.x_off + (n * P.C + c) * P.H * P.W;
${[0, 1, 2, 3]
  .map((i) =>
    [0, 1, 2, 3]
      .map((j) => {
        const h = `(h0 + ${i})`;
        const w = `(w0 + ${j})`;
        return `  let d${i}${j} = select(0.0, x[base + u32(clamp(${h}, 0, H - 1)) * P.W + u32(clamp(${w}, 0, W - 1))], ${h} >= 0 && ${h} < H && ${w} >= 0 && ${w} < W);`;
      })
      .join('\n'),
  )
  .join('\n')}
  ${inputTransformWgsl()}
  let stride = P.C * T;
  let o = c * T + t;
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  V[o + ${i * 4 + j}u * stride] = o${i}${j};`)).join('\n')}
}
`,
});

export interface WinogradWeightSpec {
  /** The input gradient's transform: kernel rotated by 180 degrees, channels swapped (U' [16, C, Cout]). */
  flip: boolean;
}

/**
 * w [Cout, C, 3, 3] -> U [16, Cout, C] = G g G^T per (co, c); with `flip`, U' [16, C, Cout] of
 * g'[c, co, i, j] = g[co, c, 2 - i, 2 - j]. One invocation per (co, c).
 */
export const winogradWeightKernel = defineKernel<WinogradWeightSpec>({
  name: 'winograd',
  key: (s) => `weight|${s.flip}`,
  signature: () => ({ params: { Cout: 'u32', C: 'u32', w_off: 'u32', w_st: ['u32', 4] }, bindings: { w: read(), U: rw() } }),
  body: (s) => {
    const tap = (i: number, j: number) => (s.flip ? `g${2 - i}${2 - j}` : `g${i}${j}`);
    const L: string[] = [];
    // q = G g (4 x 3), then u = q G^T (4 x 4).
    for (let j = 0; j < 3; j++) {
      L.push(`let q0${j} = ${tap(0, j)}; let q1${j} = 0.5 * (${tap(0, j)} + ${tap(1, j)} + ${tap(2, j)}); let q2${j} = 0.5 * (${tap(0, j)} - ${tap(1, j)} + ${tap(2, j)}); let q3${j} = ${tap(2, j)};`);
    }
    for (let r = 0; r < 4; r++) {
      L.push(`let u${r}0 = q${r}0; let u${r}1 = 0.5 * (q${r}0 + q${r}1 + q${r}2); let u${r}2 = 0.5 * (q${r}0 - q${r}1 + q${r}2); let u${r}3 = q${r}2;`);
    }
    return `
${HEAD}
  let n = P.Cout * P.C;
  if (gid >= n) { return; }
  let co = gid / P.C;
  let c = gid % P.C;
  let base = P.w_off + co * P.w_st_0 + c * P.w_st_1;
${[0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => `  let g${i}${j} = w[base + ${i}u * P.w_st_2 + ${j}u * P.w_st_3];`)).join('\n')}
  ${L.join('\n  ')}
  let o = ${s.flip ? 'c * P.Cout + co' : 'co * P.C + c'};
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  U[o + ${i * 4 + j}u * n] = u${i}${j};`)).join('\n')}
}
`;
  },
});

/**
 * M [16, Cout, T] -> y [N, Cout, Hb, Wb]: one invocation per (co, tile) forms the 2 x 2 block
 * A^T m A (+ bias[co]) and writes the part of it inside the output.
 */
export const winogradOutputKernel = defineKernel<{ bias: boolean }>({
  name: 'winograd',
  key: (s) => `output|${s.bias}`,
  signature: (s) => ({
    params: { Cout: 'u32', T: 'u32', th: 'u32', tw: 'u32', Hb: 'u32', Wb: 'u32', bias_off: 'u32', bias_st: 'u32' },
    bindings: { M: read(), ...(s.bias ? { bias: read() } : {}), y: rw() },
  }),
  body: (s) => `
${HEAD}
  let T = P.T;
  let n16 = P.Cout * T;
  if (gid >= n16) { return; }
  let co = gid / T;
  let t = gid % T;
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  let m${i}${j} = M[gid + ${i * 4 + j}u * n16];`)).join('\n')}
  // s = A^T m (2 x 4), then y = s A (2 x 2).
${[0, 1, 2, 3].map((j) => `  let s0${j} = m0${j} + m1${j} + m2${j}; let s1${j} = m1${j} - m2${j} - m3${j};`).join('\n')}
  let b = ${s.bias ? 'bias[P.bias_off + co * P.bias_st]' : '0.0'};
  let perImg = P.th * P.tw;
  let n = t / perImg;
  let r = t % perImg;
  let oh = (r / P.tw) * 2u;
  let ow = (r % P.tw) * 2u;
  let base = ((n * P.Cout + co) * P.Hb + oh) * P.Wb + ow;
  let okH = oh + 1u < P.Hb;
  let okW = ow + 1u < P.Wb;
  y[base] = (s00 + s01 + s02) + b;
  if (okW) { y[base + 1u] = (s01 - s02 - s03) + b; }
  if (okH) {
    y[base + P.Wb] = (s10 + s11 + s12) + b;
    if (okW) { y[base + P.Wb + 1u] = (s11 - s12 - s13) + b; }
  }
}
`,
});

/**
 * gy [N, Cout, Hb, Wb] -> Z [16, T, Cout] = A dY A^T per (co, tile), dY the tile's 2 x 2 block of
 * the output gradient (zero past the output's edge).
 */
export const winogradGradOutputKernel = defineKernel({
  name: 'winograd',
  key: () => 'grad_output',
  signature: () => ({
    params: { Cout: 'u32', T: 'u32', th: 'u32', tw: 'u32', Hb: 'u32', Wb: 'u32', gy_off: 'u32' },
    bindings: { gy: read(), Z: rw() },
  }),
  body: () => `
${HEAD}
  let T = P.T;
  let n16 = P.Cout * T;
  if (gid >= n16) { return; }
  let t = gid / P.Cout;
  let co = gid % P.Cout;
  let perImg = P.th * P.tw;
  let n = t / perImg;
  let r = t % perImg;
  let oh = (r / P.tw) * 2u;
  let ow = (r % P.tw) * 2u;
  let base = P.gy_off + ((n * P.Cout + co) * P.Hb + oh) * P.Wb + ow;
  let okH = oh + 1u < P.Hb;
  let okW = ow + 1u < P.Wb;
  let y00 = gy[base];
  let y01 = select(0.0, gy[base + select(0u, 1u, okW)], okW);
  let y10 = select(0.0, gy[base + select(0u, P.Wb, okH)], okH);
  let y11 = select(0.0, gy[base + select(0u, P.Wb + 1u, okH && okW)], okH && okW);
  // A dY A^T with A = [1 0; 1 1; 1 -1; 0 -1]: rows q = A dY (4 x 2), then z = q A^T (4 x 4).
  let q00 = y00; let q01 = y01;
  let q10 = y00 + y10; let q11 = y01 + y11;
  let q20 = y00 - y10; let q21 = y01 - y11;
  let q30 = -y10; let q31 = -y11;
${[0, 1, 2, 3].map((i) => `  let z${i}0 = q${i}0; let z${i}1 = q${i}0 + q${i}1; let z${i}2 = q${i}0 - q${i}1; let z${i}3 = -q${i}1;`).join('\n')}
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  Z[gid + ${i * 4 + j}u * n16] = z${i}${j};`)).join('\n')}
}
`,
});

/** D [16, C, Cout] -> dw [Cout, C, 3, 3] = G^T d G per (co, c). */
export const winogradWeightGradKernel = defineKernel({
  name: 'winograd',
  key: () => 'weight_grad',
  signature: () => ({ params: { Cout: 'u32', C: 'u32' }, bindings: { D: read(), dw: rw() } }),
  body: () => `
${HEAD}
  let n16 = P.Cout * P.C;
  if (gid >= n16) { return; }
  let co = gid / P.C;
  let c = gid % P.C;
  let o = c * P.Cout + co;
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  let d${i}${j} = D[o + ${i * 4 + j}u * n16];`)).join('\n')}
  // G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]: rows q = G^T d (3 x 4), then g = q G (3 x 3).
${[0, 1, 2, 3].map((j) => `  let q0${j} = d0${j} + 0.5 * (d1${j} + d2${j}); let q1${j} = 0.5 * (d1${j} - d2${j}); let q2${j} = 0.5 * (d1${j} + d2${j}) + d3${j};`).join('\n')}
${[0, 1, 2].map((i) => `  let g${i}0 = q${i}0 + 0.5 * (q${i}1 + q${i}2); let g${i}1 = 0.5 * (q${i}1 - q${i}2); let g${i}2 = 0.5 * (q${i}1 + q${i}2) + q${i}3;`).join('\n')}
  let base = gid * 9u;
${[0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => `  dw[base + ${i * 3 + j}u] = g${i}${j};`)).join('\n')}
}
`,
});
