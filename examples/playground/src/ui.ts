/** Small DOM helpers shared by the panels: elements by id, numeric inputs, the on-page error box. */

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`playground: no element #${id}`);
  return e as T;
}

/** A number input's value, checked against its own min/max; the message names the field. */
export function numberInput(id: string, what: string, o: { integer?: boolean } = {}): number {
  const input = byId<HTMLInputElement>(id);
  const v = Number(input.value);
  const min = input.min === '' ? -Infinity : Number(input.min);
  const max = input.max === '' ? Infinity : Number(input.max);
  if (input.value.trim() === '' || !Number.isFinite(v) || (o.integer && !Number.isInteger(v)) || v < min || v > max) {
    const range = `${Number.isFinite(min) ? `>= ${min}` : ''}${Number.isFinite(min) && Number.isFinite(max) ? ' and ' : ''}${Number.isFinite(max) ? `<= ${max}` : ''}`;
    throw new Error(`${what} must be ${o.integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}, got '${input.value}'`);
  }
  return v;
}

/** Shows a one-line error on the page (and in the console, with its stack). */
export function showError(e: unknown, context?: string): void {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(context ? `${context}: ` : '', e);
  const box = byId('errors');
  const line = document.createElement('div');
  line.textContent = context ? `${context}: ${msg}` : msg;
  box.append(line);
  while (box.childElementCount > 4) box.firstElementChild!.remove();
}

export function clearErrors(): void {
  byId('errors').replaceChildren();
}

/** Offers bytes as a file download. */
export function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
