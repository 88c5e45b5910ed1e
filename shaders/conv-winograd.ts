/**
 * Winograd F(m x m, 3x3) convolution kernels (3x3 kernels, stride 1, dilation 1, groups 1), for
 * output tiles of m = 2 or m = 4: the output is cut into m x m tiles, and each tile is
 *   Y = A^T [ U (.) V ] A,   U = G g G^T (a x a per filter),   V = B^T d B (a x a per input patch d)
 * with a = m + 2, so the 9 m^2 multiplies of a tile's direct convolution become a^2 (16 for m = 2,
 * 2.25x fewer; 36 for m = 4, 4x fewer), done as a^2 independent GEMMs over channels:
 * M[e] = U[e] (Cout x C) @ V[e] (C x T) for the elements e of the transforms and T tiles. The
 * kernels here are the transforms, generated from the matrices below; the GEMMs run on the matmul
 * kernels. F(4x4) trades accuracy for speed: its matrices hold 1/24 .. 8 (interpolation points 0,
 * +-1, +-2), so rounding grows with the magnitudes (measured in test/conv-implicit.test.ts).
 * The weight gradient follows from the same identity: dg = G^T [ sum_t (A dY_t A^T) (.) V_t ] G.
 *
 * Layouts (element e = a * row + column of the a x a transform; tile t = (n * th + ty) * tw + tx
 * over th x tw tiles per image):
 *   V [a^2, C, T]    input transform
 *   U [a^2, Cout, C] weight transform; flipped: U' [a^2, C, Cout] of the kernel rotated by 180
 *                    degrees with the channels swapped (the input gradient is a convolution of the
 *                    output gradient with it); V and U in one dispatch (winogradForwardInKernel)
 *   M [a^2, Cout, T] product, to the output by winogradOutputKernel (+ bias)
 *   Z [a^2, T, Cout] output-gradient transform A dY A^T, with V in one dispatch (winogradGradInKernel)
 *   D [a^2, C, Cout] = V[e] @ Z[e], to the weight gradient by winogradWeightGradKernel.
 * The bias gradient rides along (`bias` of the two weight-gradient kernels): the sum of a tile's
 * output gradient is one element of its transform, Z_t[e*] with e* = a + 1 (A^T's column 1 holds
 * the interpolation point 1: all ones, so u = e_1 gives u^T A dY A^T u = 1^T dY 1), so V gets a
 * row of ones as channel C (V [a^2, C + 1, T]), the GEMM sums Z over the tiles into D[e*, C, :]
 * (D [a^2, C + 1, Cout]), and the last kernel copies that row out: db with no dispatch of its own.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';

export type WinogradTile = 2 | 4;

type Mat = readonly (readonly number[])[];

/** B^T, G, A^T of F(m x m, 3x3) (Lavin and Gray, 2016). */
const MATRICES: Record<WinogradTile, { BT: Mat; G: Mat; AT: Mat }> = {
  2: {
    BT: [
      [1, 0, -1, 0],
      [0, 1, 1, 0],
      [0, -1, 1, 0],
      [0, 1, 0, -1],
    ],
    G: [
      [1, 0, 0],
      [0.5, 0.5, 0.5],
      [0.5, -0.5, 0.5],
      [0, 0, 1],
    ],
    AT: [
      [1, 1, 1, 0],
      [0, 1, -1, -1],
    ],
  },
  4: {
    BT: [
      [4, 0, -5, 0, 1, 0],
      [0, -4, -4, 1, 1, 0],
      [0, 4, -4, -1, 1, 0],
      [0, -2, -1, 2, 1, 0],
      [0, 2, -1, -2, 1, 0],
      [0, 4, 0, -5, 0, 1],
    ],
    G: [
      [1 / 4, 0, 0],
      [-1 / 6, -1 / 6, -1 / 6],
      [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6],
      [1 / 24, -1 / 12, 1 / 6],
      [0, 0, 1],
    ],
    AT: [
      [1, 1, 1, 1, 1, 0],
      [0, 1, -1, 2, -2, 0],
      [0, 1, 1, 4, 4, 0],
      [0, 1, -1, 8, -8, 1],
    ],
  },
};

const transpose = (m: Mat): number[][] => m[0]!.map((_, j) => m.map((row) => row[j]!));

/** A WGSL f32 literal for a matrix entry (fractions to full f32 precision). */
function literal(c: number): string {
  const s = Number.isInteger(c) ? c.toFixed(1) : String(Math.fround(c));
  return s.includes('e') ? `f32(${s})` : s;
}

/** WGSL for sum_j mat[i][j] * x_j, zero terms skipped and unit coefficients as plain adds. */
function dot(row: readonly number[], x: (j: number) => string): string {
  const terms: string[] = [];
  row.forEach((c, j) => {
    if (c === 0) return;
    const v = x(j);
    if (c === 1) terms.push(terms.length ? `+ ${v}` : v);
    else if (c === -1) terms.push(terms.length ? `- ${v}` : `-${v}`);
    else terms.push(`${terms.length ? '+ ' : ''}${literal(c)} * ${v}`);
  });
  return terms.length ? terms.join(' ') : '0.0';
}

/**
 * WGSL declaring out{r}_{c} = (L X R^T)[r][c] for X (xCols columns) given as x(i, j): first
 * q{i}_{c} = (L X)[i][c], then each row of q times R^T.
 */
function sandwich(L: Mat, R: Mat, xCols: number, x: (i: number, j: number) => string, q: string, out: string): string {
  const lines: string[] = [];
  for (let i = 0; i < L.length; i++) {
    for (let c = 0; c < xCols; c++) lines.push(`let ${q}${i}_${c} = ${dot(L[i]!, (j) => x(j, c))};`);
  }
  for (let i = 0; i < L.length; i++) {
    for (let c = 0; c < R.length; c++) lines.push(`let ${out}${i}_${c} = ${dot(R[c]!, (j) => `${q}${i}_${j}`)};`);
  }
  return lines.join('\n  ');
}

export const WINOGRAD_WG = 64;

const HEAD = `@compute @workgroup_size(${WINOGRAD_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let gid = linear_wg(wid, nwg) * ${WINOGRAD_WG}u + lid.x;`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Tile decomposition: n, and the tile's top-left output pixel (oh, ow), of tile t. */
const TILE_ORIGIN = (m: number) => `
  let perImg = P.th * P.tw;
  let n = t / perImg;
  let r = t % perImg;
  let oh = (r / P.tw) * ${m}u;
  let ow = (r % P.tw) * ${m}u;`;

/**
 * WGSL `fn input_transform(i)`: x [N, C, H, W] -> V [a^2, Cv, T] (Cv = C, or C + 1 with the bias
 * gradient's row of ones); invocation i < C T takes one (channel, tile), reads the a x a patch at
 * (m ty - ph, m tx - pw) (zero outside the image) and writes its a^2 transformed values.
 */
function inputTransformFn(m: WinogradTile): string {
  const a = m + 2;
  const { BT } = MATRICES[m];
  return `
fn input_transform(i: u32) {
  let T = P.T;
  let c = i / T;
  let t = i % T;${TILE_ORIGIN(m)}
  let h0 = i32(oh) - i32(P.ph);
  let w0 = i32(ow) - i32(P.pw);
  let H = i32(P.H);
  let W = i32(P.W);
  let base = P.x_off + (n * P.C + c) * P.H * P.W;
${range(a)
  .flatMap((r) =>
    range(a).map((q) => {
      const h = `(h0 + ${r})`;
      const w = `(w0 + ${q})`;
      return `  let d${r}_${q} = select(0.0, x[base + u32(clamp(${h}, 0, H - 1)) * P.W + u32(clamp(${w}, 0, W - 1))], ${h} >= 0 && ${h} < H && ${w} >= 0 && ${w} < W);`;
    }),
  )
  .join('\n')}
  ${sandwich(BT, BT, a, (r, q) => `d${r}_${q}`, 'q', 'o')}
  let stride = P.Cv * T;
  let o = c * T + t;
${range(a)
  .flatMap((r) => range(a).map((q) => `  V[o + ${r * a + q}u * stride] = o${r}_${q};`))
  .join('\n')}
}
`;
}

/**
 * WGSL `fn weight_transform(i)`: w [wCout, wC, 3, 3] -> U [a^2, wCout, wC] = G g G^T, invocation i
 * < wCout wC taking one (co, c) of w; with `flip`, U' [a^2, wC, wCout] of g'[c, co, i, j] =
 * g[co, c, 2 - i, 2 - j] (the input gradient's kernel: rotated 180 degrees, channels swapped).
 */
function weightTransformFn(m: WinogradTile, flip: boolean): string {
  const a = m + 2;
  const { G } = MATRICES[m];
  const tap = (r: number, q: number) => (flip ? `g${2 - r}_${2 - q}` : `g${r}_${q}`);
  return `
fn weight_transform(i: u32) {
  let n = P.wCout * P.wC;
  let co = i / P.wC;
  let c = i % P.wC;
  let base = P.w_off + co * P.w_st_0 + c * P.w_st_1;
${range(3)
  .flatMap((r) => range(3).map((q) => `  let g${r}_${q} = w[base + ${r}u * P.w_st_2 + ${q}u * P.w_st_3];`))
  .join('\n')}
  ${sandwich(G, G, 3, tap, 'q', 'u')}
  let o = ${flip ? 'c * P.wCout + co' : 'co * P.wC + c'};
${range(a)
  .flatMap((r) => range(a).map((q) => `  U[o + ${r * a + q}u * n] = u${r}_${q};`))
  .join('\n')}
}
`;
}

/**
 * WGSL `fn grad_output_transform(i)`: gy [N, Cout, Hb, Wb] -> Z [a^2, T, Cout] = A dY A^T,
 * invocation i < Cout T taking one (tile, co); dY is the tile's m x m block of the output
 * gradient (zero past the output's edge).
 */
function gradOutputTransformFn(m: WinogradTile): string {
  const a = m + 2;
  const A = transpose(MATRICES[m].AT);
  return `
fn grad_output_transform(i: u32) {
  let T = P.T;
  let count = P.Cout * T;
  let t = i / P.Cout;
  let co = i % P.Cout;${TILE_ORIGIN(m)}
  let base = P.gy_off + ((n * P.Cout + co) * P.Hb + oh) * P.Wb + ow;
${range(m)
  .flatMap((r) =>
    range(m).map((q) => {
      const ok = `oh + ${r}u < P.Hb && ow + ${q}u < P.Wb`;
      return `  let e${r}_${q} = select(0.0, gy[select(base, base + ${r}u * P.Wb + ${q}u, ${ok})], ${ok});`;
    }),
  )
  .join('\n')}
  ${sandwich(A, A, m, (r, q) => `e${r}_${q}`, 'q', 'z')}
${range(a)
  .flatMap((r) => range(a).map((q) => `  Z[i + ${r * a + q}u * count] = z${r}_${q};`))
  .join('\n')}
}
`;
}

const INPUT_PARAMS = { C: 'u32', H: 'u32', W: 'u32', ph: 'u32', pw: 'u32', th: 'u32', tw: 'u32', T: 'u32', x_off: 'u32' } as const;

export interface WinogradForwardInSpec {
  m: WinogradTile;
  /** The weight is read as the input gradient's kernel (see weightTransformFn). */
  flip: boolean;
}

/**
 * The forward's (and the input gradient's) two transforms in one dispatch: invocations below
 * C T transform the input (V), the next wCout wC the weight (U or U').
 */
export const winogradForwardInKernel = defineKernel<WinogradForwardInSpec>({
  name: 'winograd',
  key: (s) => `forward_in|${s.m}|${s.flip}`,
  signature: () => ({
    params: { ...INPUT_PARAMS, Cv: 'u32', wCout: 'u32', wC: 'u32', w_off: 'u32', w_st: ['u32', 4] },
    bindings: { x: read(), w: read(), V: rw(), U: rw() },
  }),
  body: ({ m, flip }) => `${inputTransformFn(m)}${weightTransformFn(m, flip)}
${HEAD}
  let nIn = P.C * P.T;
  if (gid < nIn) { input_transform(gid); } else if (gid - nIn < P.wCout * P.wC) { weight_transform(gid - nIn); }
}
`,
});

/** Variant of the weight-gradient kernels: the tile, and whether the bias gradient rides along. */
export interface WinogradGradSpec {
  m: WinogradTile;
  bias: boolean;
}

/**
 * The weight gradient's two transforms in one dispatch: invocations below C T transform the input
 * (V), the next Cout T the output gradient (Z); with `bias` the next T write V's row of ones
 * (channel C, every element).
 */
export const winogradGradInKernel = defineKernel<WinogradGradSpec>({
  name: 'winograd',
  key: (s) => `grad_in|${s.m}${s.bias ? '|db' : ''}`,
  signature: () => ({
    params: { ...INPUT_PARAMS, Cv: 'u32', Cout: 'u32', Hb: 'u32', Wb: 'u32', gy_off: 'u32' },
    bindings: { x: read(), gy: read(), V: rw(), Z: rw() },
  }),
  body: ({ m, bias }) => {
    const a = m + 2;
    const ones = bias
      ? ` else if (gid - nIn - nZ < P.T) {
    let o = P.C * P.T + gid - nIn - nZ;
${range(a * a)
  .map((e) => `    V[o + ${e}u * P.Cv * P.T] = 1.0;`)
  .join('\n')}
  }`
      : '';
    return `${inputTransformFn(m)}${gradOutputTransformFn(m)}
${HEAD}
  let nIn = P.C * P.T;
  let nZ = P.Cout * P.T;
  if (gid < nIn) { input_transform(gid); } else if (gid - nIn < nZ) { grad_output_transform(gid - nIn); }${ones}
}
`;
  },
});

const OUTPUT_PARAMS = { Cout: 'u32', T: 'u32', th: 'u32', tw: 'u32', Hb: 'u32', Wb: 'u32', bias_off: 'u32', bias_st: 'u32', res_off: 'u32' } as const;

/**
 * WGSL `fn output_tile(gid)`: M [a^2, Cout, T] -> y [N, Cout, Hb, Wb]; invocation gid < Cout T
 * takes one (co, tile), forms the m x m block A^T M A (+ bias[co]) and writes the part of it
 * inside the output; with `residual`, (block + bias) + res at the same place of a dense res
 * [N, Cout, Hb, Wb] (a residual connection's add: the same sum, in the same order, as adding after).
 */
function outputTileFn(m: WinogradTile, bias: boolean, residual = false): string {
  const a = m + 2;
  const { AT } = MATRICES[m];
  return `
fn output_tile(gid: u32) {
  let T = P.T;
  let count = P.Cout * T;
  if (gid >= count) { return; }
  let co = gid / T;
  let t = gid % T;
${range(a)
  .flatMap((i) => range(a).map((j) => `  let m${i}_${j} = M[gid + ${i * a + j}u * count];`))
  .join('\n')}
  ${sandwich(AT, AT, a, (i, j) => `m${i}_${j}`, 's', 'y')}
  let b = ${bias ? 'bias[P.bias_off + co * P.bias_st]' : '0.0'};${TILE_ORIGIN(m)}
  let base = ((n * P.Cout + co) * P.Hb + oh) * P.Wb + ow;
${range(m)
  .flatMap((i) =>
    range(m).map((j) => {
      const conds = [...(i > 0 ? [`oh + ${i}u < P.Hb`] : []), ...(j > 0 ? [`ow + ${j}u < P.Wb`] : [])];
      const at = `base + ${i}u * P.Wb + ${j}u`;
      const store = residual ? `y[${at}] = (y${i}_${j} + b) + res[P.res_off + ${at}];` : `y[${at}] = y${i}_${j} + b;`;
      return conds.length ? `  if (${conds.join(' && ')}) { ${store} }` : `  ${store}`;
    }),
  )
  .join('\n')}
}
`;
}

/** M [a^2, Cout, T] -> y [N, Cout, Hb, Wb] (+ bias) (+ a residual), one invocation per (co, tile). */
export const winogradOutputKernel = defineKernel<{ m: WinogradTile; bias: boolean; residual?: boolean }>({
  name: 'winograd',
  key: (s) => `output|${s.m}|${s.bias}${s.residual ? '|res' : ''}`,
  signature: (s) => ({
    params: OUTPUT_PARAMS,
    bindings: { M: read(), ...(s.bias ? { bias: read() } : {}), ...(s.residual ? { res: read() } : {}), y: rw() },
  }),
  body: ({ m, bias, residual }) => `${outputTileFn(m, bias, residual)}
${HEAD}
  output_tile(gid);
}
`,
});

const WEIGHT_GRAD_PARAMS = { Cout: 'u32', C: 'u32', Cd: 'u32' } as const;

/**
 * WGSL `fn weight_grad_out(gid)`: D [a^2, Cd, Cout] -> dw [Cout, C, 3, 3] = G^T D G per (co, c);
 * with `bias` (Cd = C + 1) invocations Cout C .. Cout (C + 1) copy db[co] = D[a + 1, C, co].
 */
function weightGradOutFn(m: WinogradTile, bias: boolean): string {
  const a = m + 2;
  const GT = transpose(MATRICES[m].G);
  const db = bias ? `\n  if (gid >= count && gid < count + P.Cout) { db[gid - count] = D[P.C * P.Cout + gid - count + ${a + 1}u * stride]; }` : '';
  return `
fn weight_grad_out(gid: u32) {
  let count = P.Cout * P.C;
  let stride = P.Cd * P.Cout;${db}
  if (gid >= count) { return; }
  let co = gid / P.C;
  let c = gid % P.C;
  let o = c * P.Cout + co;
${range(a)
  .flatMap((i) => range(a).map((j) => `  let d${i}_${j} = D[o + ${i * a + j}u * stride];`))
  .join('\n')}
  ${sandwich(GT, GT, a, (i, j) => `d${i}_${j}`, 'q', 'g')}
  let base = gid * 9u;
${range(3)
  .flatMap((i) => range(3).map((j) => `  dw[base + ${i * 3 + j}u] = g${i}_${j};`))
  .join('\n')}
}
`;
}

/** D [a^2, Cd, Cout] -> dw [Cout, C, 3, 3] (and db with `bias`), one invocation per (co, c). */
export const winogradWeightGradKernel = defineKernel<WinogradGradSpec>({
  name: 'winograd',
  key: (s) => `weight_grad|${s.m}${s.bias ? '|db' : ''}`,
  signature: (s) => ({ params: WEIGHT_GRAD_PARAMS, bindings: { D: read(), dw: rw(), ...(s.bias ? { db: rw() } : {}) } }),
  body: ({ m, bias }) => `${weightGradOutFn(m, bias)}
${HEAD}
  weight_grad_out(gid);
}
`,
});

/**
 * One transform function of one job in a kernel doing two: its function, its parameters (`P.x` ->
 * `P.<prefix>x`) and its bindings (`name[` -> `renamed[`) renamed, so the two jobs' copies of a
 * transform coexist in one shader. The generated code names bindings only as `name[`.
 */
function renamed(code: string, fn: [string, string], prefix: string, bindings: Record<string, string> = {}): string {
  let out = code.replace(new RegExp(`\\bfn ${fn[0]}\\(`), `fn ${fn[1]}(`).replace(/\bP\.(\w+)/g, `P.${prefix}$1`);
  for (const [from, to] of Object.entries(bindings)) out = out.replace(new RegExp(`\\b${from}\\[`, 'g'), `${to}[`);
  return out;
}

const prefixed = <T extends Record<string, unknown>>(prefix: string, params: T) => Object.fromEntries(Object.entries(params).map(([k, v]) => [`${prefix}${k}`, v]));

/**
 * The transforms of both gradients of a convolution in one dispatch (a backward pass needs dx and
 * dw of the same gy): invocations in order take the input gradient's transform of gy (Vx, padding
 * 2 - p) and of the flipped weight (U'), then the weight gradient's transform of x (Vw) and of gy
 * (Z), then with `bias` Vw's row of ones. Parameters `dx_*` and `dw_*` are those of
 * winogradForwardInKernel (flip) and winogradGradInKernel.
 */
export const winogradBackwardInKernel = defineKernel<WinogradGradSpec>({
  name: 'winograd',
  key: (s) => `backward_in|${s.m}${s.bias ? '|db' : ''}`,
  signature: () => ({
    params: {
      ...prefixed('dx_', { ...INPUT_PARAMS, Cv: 'u32', wCout: 'u32', wC: 'u32', w_off: 'u32', w_st: ['u32', 4] }),
      ...prefixed('dw_', { ...INPUT_PARAMS, Cv: 'u32', Cout: 'u32', Hb: 'u32', Wb: 'u32', gy_off: 'u32' }),
    } as Record<string, 'u32' | ['u32', number]>,
    bindings: { gy: read(), w: read(), x: read(), Vx: rw(), U: rw(), Vw: rw(), Z: rw() },
  }),
  body: ({ m, bias }) => {
    const a = m + 2;
    const ones = bias
      ? ` else if (gid < n4 + P.dw_T) {
    let o = P.dw_C * P.dw_T + gid - n4;
${range(a * a)
  .map((e) => `    Vw[o + ${e}u * P.dw_Cv * P.dw_T] = 1.0;`)
  .join('\n')}
  }`
      : '';
    return `${renamed(inputTransformFn(m), ['input_transform', 'dx_input'], 'dx_', { x: 'gy', V: 'Vx' })}${renamed(weightTransformFn(m, true), ['weight_transform', 'dx_weight'], 'dx_')}${renamed(inputTransformFn(m), ['input_transform', 'dw_input'], 'dw_', { V: 'Vw' })}${renamed(gradOutputTransformFn(m), ['grad_output_transform', 'dw_grad_output'], 'dw_')}
${HEAD}
  let n1 = P.dx_C * P.dx_T;
  let n2 = n1 + P.dx_wCout * P.dx_wC;
  let n3 = n2 + P.dw_C * P.dw_T;
  let n4 = n3 + P.dw_Cout * P.dw_T;
  if (gid < n1) { dx_input(gid); } else if (gid < n2) { dx_weight(gid - n1); } else if (gid < n3) { dw_input(gid - n2); } else if (gid < n4) { dw_grad_output(gid - n3); }${ones}
}
`;
  },
});

/**
 * Both gradients' last step in one dispatch: invocations below C Tx form the input gradient's
 * tiles (Mx -> dx, as winogradOutputKernel without bias, parameters `dx_*`), the rest the weight
 * (and bias) gradient (D -> dw, db, as winogradWeightGradKernel, parameters `dw_*`).
 */
export const winogradBackwardOutKernel = defineKernel<WinogradGradSpec>({
  name: 'winograd',
  key: (s) => `backward_out|${s.m}${s.bias ? '|db' : ''}`,
  signature: (s) => ({
    params: { ...prefixed('dx_', OUTPUT_PARAMS), ...prefixed('dw_', WEIGHT_GRAD_PARAMS) } as Record<string, 'u32'>,
    bindings: { Mx: read(), dx: rw(), D: read(), dw: rw(), ...(s.bias ? { db: rw() } : {}) },
  }),
  body: ({ m, bias }) => `${renamed(outputTileFn(m, false), ['output_tile', 'dx_output'], 'dx_', { M: 'Mx', y: 'dx' })}${renamed(weightGradOutFn(m, bias), ['weight_grad_out', 'dw_output'], 'dw_')}
${HEAD}
  let n1 = P.dx_Cout * P.dx_T;
  if (gid < n1) { dx_output(gid); } else { dw_output(gid - n1); }
}
`,
});
