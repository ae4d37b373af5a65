/** Where the console goes once a token is accepted: the page a link asked for, if it is one of
 * the console's own paths (never another site: `//host`, `https:`), else the board. */
export function afterLogin(next: unknown): string {
  if (typeof next !== 'string') return '/'
  if (!next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/'
  return next
}
