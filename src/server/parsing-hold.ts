/**
 * Redis runs AUTH before it reads the next request of the same buffer, and judges that request
 * with its unauthenticated limits (10 arguments, 16 KB bulks) or without them by the auth state
 * AUTH left. This server parses ahead of execution (pipelining), so after a request that can
 * change the auth state, parsing stops until every request read so far is answered; the bytes
 * after it wait in the parser (and the socket is paused), then are parsed with the new state.
 * Which requests hold parsing is the router's intake (commands/redis/connection.ts); the
 * connection pauses the parser for them (connection.ts).
 */
import type { RequestParser } from '../protocol/request-parser.js';

export class ParsingHold {
  /** The socket was paused by this hold (and is resumed by it). */
  private socketPaused = false;

  /**
   * `answered`: every request read so far has its reply (and the connection is not closing);
   * `flush`: sends what the requests parsed on wrote, to the backend and to the client.
   */
  constructor(
    private readonly parser: RequestParser,
    /** The client socket's reading (resume does nothing once the server is shutting down). */
    private readonly socket: { pause(): void; resume(): void },
    private readonly answered: () => boolean,
    private readonly flush: () => void,
  ) {}

  /**
   * Called after anything that may answer a request. While parsing is held: parses on once every
   * request read so far is answered, and flushes what the requests parsed wrote (also when parsing
   * stopped again at a later AUTH, which must be sent); until then keeps the socket paused, so
   * what the client sends meanwhile waits in the kernel.
   */
  release(): void {
    if (!this.parser.paused) return;
    while (this.parser.paused && this.answered()) {
      // Resumed first, so a pause the session makes while parsing on (a long inbox) stands.
      if (this.socketPaused) {
        this.socketPaused = false;
        this.socket.resume();
      }
      this.parser.resume();
    }
    if (this.parser.paused) {
      // Paused again each time: a `drain` of a backend link resumes the socket.
      this.socketPaused = true;
      this.socket.pause();
    }
    this.flush();
  }
}
