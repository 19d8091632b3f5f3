/**
 * An error that becomes a RESP error reply. `message` is the text after the prefix,
 * e.g. new CommandError('invalid id') is sent as "-ERR invalid id".
 * Lower layers (llm, vector, storage) throw these with the exact texts users see;
 * messages must never contain secrets.
 */
export class CommandError extends Error {
  readonly prefix: string;
  constructor(message: string, prefix = 'ERR') {
    super(message);
    this.name = 'CommandError';
    this.prefix = prefix;
  }
}

export const wrongTypeError = () =>
  new CommandError('Operation against a key holding the wrong kind of value', 'WRONGTYPE');

export const syntaxError = () => new CommandError('syntax error');

/** The name as given: LLM.* commands pass it as registered (`'LLM.ADD'`), as the original module's replies do. */
export const arityError = (name: string) =>
  new CommandError(`wrong number of arguments for '${name}' command`);
