/** Element types. f16 is reserved in the type so storage code keys off `DTYPE_INFO`, not on f32 alone. */
export type DType = 'f32' | 'i32';

export const DTYPES: readonly DType[] = ['f32', 'i32'];

export interface DTypeInfo {
  bytes: number;
  /** WGSL scalar type name. */
  wgsl: string;
}

export const DTYPE_INFO: Record<DType, DTypeInfo> = {
  f32: { bytes: 4, wgsl: 'f32' },
  i32: { bytes: 4, wgsl: 'i32' },
};

export function checkDType(dtype: unknown, where: string): DType {
  if (dtype === 'f32' || dtype === 'i32') return dtype;
  throw new TypeError(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${DTYPES.join(', ')})`);
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'f32';
}
