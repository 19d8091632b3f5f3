/**
 * INFO gains an `# LLM` section. `INFO llm` is answered here alone; `INFO`, `INFO all`,
 * `INFO everything` and lists that name `llm` get the backend's sections plus ours. On one Redis,
 * the `# Clients` section describes this server's clients (client.ts, clientsSection): the
 * server's own connections and blocking reads are not counted.
 */
import { decodeFrame, encodeText, ErrorReply } from '../../protocol/resp.js';
import type { Services } from '../services.js';
import type { Intercept } from '../plan.js';
import { clientsSection, textReply } from './client.js';

/** Does INFO with these (lower-cased) section names show the clients section? */
const showsClients = (sections: string[]) => sections.length === 0 || sections.some((s) => s === 'clients' || s === 'default' || s === 'all' || s === 'everything');

export function llmSection(services: Services): string {
  return ['# LLM', ...services.llmInfo()].join('\r\n') + '\r\n';
}

export const info: Intercept = (args, view, services) => {
  const sections = args.slice(1).map((a) => a.toString('latin1').toLowerCase());
  const wantsLlm = sections.length === 0 || sections.some((s) => s === 'llm' || s === 'all' || s === 'everything' || s === 'default');
  if (services.mode !== 'standalone' && !view.cluster && !view.inMulti && showsClients(sections)) {
    const asked = sections.filter((s) => s !== 'llm');
    return {
      kind: 'local',
      run: async (ctx) => {
        const reply = await ctx.client.backendCall(['INFO', ...asked]);
        if (!Buffer.isBuffer(reply)) return reply instanceof ErrorReply ? reply : null;
        const list = await ctx.client.backendCall(['CLIENT', 'LIST']);
        let text = clientsSection(reply.toString('latin1'), Buffer.isBuffer(list) ? list.toString('latin1') : '', services);
        if (wantsLlm) text += `${text.length ? '\r\n' : ''}${llmSection(services)}`;
        return textReply(text, view.proto);
      },
    };
  }
  if (!wantsLlm) return null;
  const others = sections.filter((s) => s !== 'llm');
  if (services.mode === 'standalone' || (sections.length > 0 && others.length === 0)) {
    return {
      kind: 'local',
      run: () => {
        const server = services.mode === 'standalone' && others.length + sections.length !== 1
          ? `# Server\r\nredis_llm_server_mode:standalone\r\nuptime_in_seconds:${Math.floor((Date.now() - services.startedAt) / 1000)}\r\n\r\n`
          : '';
        return server + llmSection(services);
      },
    };
  }
  const forwardArgs = [args[0], ...others.map((s) => Buffer.from(s))];
  return {
    kind: 'forward',
    args: forwardArgs,
    hooks: {
      transform(frame) {
        const { value } = decodeFrame(frame);
        if (!Buffer.isBuffer(value)) return frame;
        const text = Buffer.concat([value, Buffer.from(value.length ? '\r\n' : ''), Buffer.from(llmSection(services))]);
        // RESP3's INFO is a verbatim string (`=` with a `txt:` format): kept as it came.
        return encodeText(text, frame[0] === 61);
      },
    },
  };
};
