/** Small assertions on replies, shared by the command and hardening suites. */

/** The error text of a command that must fail; throws (failing the test) when it succeeds. */
export async function errOf(p: Promise<unknown>): Promise<string> {
  let v: unknown;
  try {
    v = await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`expected an error reply, got ${JSON.stringify(v)}`);
}

/** Does `text` contain any 8-character piece of `secret`? */
export function leaks(text: string, secret: string): boolean {
  for (let i = 0; i + 8 <= secret.length; i++) if (text.includes(secret.slice(i, i + 8))) return true;
  return false;
}
